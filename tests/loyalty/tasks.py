from celery import shared_task

from apps.orders.events import OrderCanceled, OrderCompleted, OrderCreated, OrderFailed
from common.tasks import COMPENSATION_TASK_OPTIONS, LISTENER_TASK_OPTIONS
from eventbus.events import event_from_envelope
from tests.loyalty.services import points_earn, points_give_back, points_reserve


@shared_task(**LISTENER_TASK_OPTIONS)
def reserve_points_task(envelope: dict) -> None:
    event: OrderCreated = event_from_envelope(envelope)
    points_reserve(order_id=event.order_id, user_id=event.user_id, total_price=event.total_price)


@shared_task(**COMPENSATION_TASK_OPTIONS)
def earn_points_task(envelope: dict) -> None:
    event: OrderCompleted = event_from_envelope(envelope)
    points_earn(order_id=event.order_id)


@shared_task(**COMPENSATION_TASK_OPTIONS)
def give_back_points_task(envelope: dict) -> None:
    event: OrderFailed | OrderCanceled = event_from_envelope(envelope)
    points_give_back(order_id=event.order_id)
