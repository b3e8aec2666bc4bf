from celery import shared_task

from apps.balance.services import balance_refund, balance_use
from apps.orders.events import OrderCanceled, OrderCreated, OrderFailed
from common.tasks import COMPENSATION_TASK_OPTIONS, LISTENER_TASK_OPTIONS
from eventbus.events import event_from_envelope


@shared_task(**LISTENER_TASK_OPTIONS)
def use_balance_task(envelope: dict) -> None:
    event: OrderCreated = event_from_envelope(envelope)
    balance_use(order_id=event.order_id, user_id=event.user_id, amount=event.total_price)


@shared_task(**COMPENSATION_TASK_OPTIONS)
def refund_balance_task(envelope: dict) -> None:
    event: OrderFailed | OrderCanceled = event_from_envelope(envelope)
    balance_refund(order_id=event.order_id)
