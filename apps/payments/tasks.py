from celery import shared_task

from apps.orders.events import OrderCanceled, OrderCompleteFailed, OrderPaymentWaited
from apps.payments.services import payment_cancel, payment_pay
from common.tasks import LISTENER_TASK_OPTIONS
from eventbus.events import event_from_envelope


@shared_task(**LISTENER_TASK_OPTIONS)
def pay_task(envelope: dict) -> None:
    event: OrderPaymentWaited = event_from_envelope(envelope)
    payment_pay(order_id=event.order_id, user_id=event.user_id, amount=event.total_price)


@shared_task(**LISTENER_TASK_OPTIONS)
def cancel_payment_task(envelope: dict) -> None:
    event: OrderCompleteFailed | OrderCanceled = event_from_envelope(envelope)
    payment_cancel(order_id=event.order_id, reason=event.reason)
