from celery import Task, shared_task

from apps.orders.events import OrderCanceled, OrderCompleteFailed, OrderPaymentWaited
from apps.payments.services import payment_cancel, payment_pay
from common.circuit import CallDeferred, wait_for_circuit
from common.tasks import LISTENER_TASK_OPTIONS
from eventbus.events import event_from_envelope


@shared_task(bind=True, **LISTENER_TASK_OPTIONS)
def pay_task(self: Task, envelope: dict) -> None:
    """While the gateway's circuit breaker is open the payment waits (READY) for the task's retry."""
    event: OrderPaymentWaited = event_from_envelope(envelope)
    try:
        payment_pay(order_id=event.order_id, user_id=event.user_id, amount=event.total_price)
    except CallDeferred as deferred:
        wait_for_circuit(self, deferred)


@shared_task(bind=True, **LISTENER_TASK_OPTIONS)
def cancel_payment_task(self: Task, envelope: dict) -> None:
    event: OrderCompleteFailed | OrderCanceled = event_from_envelope(envelope)
    try:
        payment_cancel(order_id=event.order_id, reason=event.reason)
    except CallDeferred as deferred:
        wait_for_circuit(self, deferred)
