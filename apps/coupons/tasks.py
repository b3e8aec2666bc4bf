from celery import shared_task

from apps.coupons.services import coupon_restore, coupon_use
from apps.orders.events import OrderCanceled, OrderCreated, OrderFailed
from common.tasks import COMPENSATION_TASK_OPTIONS, LISTENER_TASK_OPTIONS
from eventbus.events import event_from_envelope


@shared_task(**LISTENER_TASK_OPTIONS)
def use_coupon_task(envelope: dict) -> None:
    event: OrderCreated = event_from_envelope(envelope)
    if event.user_coupon_id is None:
        return  # no coupon counts as SUCCESS: the orders app knows the order has none
    coupon_use(order_id=event.order_id, user_coupon_id=event.user_coupon_id, user_id=event.user_id)


@shared_task(**COMPENSATION_TASK_OPTIONS)
def restore_coupon_task(envelope: dict) -> None:
    event: OrderFailed | OrderCanceled = event_from_envelope(envelope)
    if event.user_coupon_id is None:
        return  # no coupon, so no coupon step could have taken effect
    coupon_restore(order_id=event.order_id)
