"""Listener tasks of the orders app."""

from celery import shared_task

from apps.balance.events import BalanceUsed, BalanceUseFailed
from apps.coupons.events import CouponUsed, CouponUseFailed
from apps.orders.services import order_complete, order_fail, order_record_step, orders_recover
from apps.orders.services.saga import UNPAID
from apps.payments.events import PaymentCanceled, PaymentFailed, PaymentPaid
from apps.products.events import StockDeducted, StockDeductFailed
from common.tasks import LISTENER_TASK_OPTIONS
from eventbus.events import event_from_envelope

# Which step each result event reports, and whether it succeeded.
STEP_RESULTS = {
    BalanceUsed: ("balance", True),
    BalanceUseFailed: ("balance", False),
    CouponUsed: ("coupon", True),
    CouponUseFailed: ("coupon", False),
    StockDeducted: ("stock", True),
    StockDeductFailed: ("stock", False),
}


@shared_task(**LISTENER_TASK_OPTIONS)
def record_step_result_task(envelope: dict) -> None:
    event = event_from_envelope(envelope)
    step, succeeded = STEP_RESULTS[type(event)]
    order_record_step(order_id=event.order_id, step=step, succeeded=succeeded, reason=getattr(event, "reason", ""))


@shared_task(**LISTENER_TASK_OPTIONS)
def complete_order_task(envelope: dict) -> None:
    event: PaymentPaid = event_from_envelope(envelope)
    order_complete(order_id=event.order_id)


@shared_task(**LISTENER_TASK_OPTIONS)
def fail_order_task(envelope: dict) -> None:
    event: PaymentFailed | PaymentCanceled = event_from_envelope(envelope)
    prefix = "payment failed" if isinstance(event, PaymentFailed) else "payment canceled"
    order_fail(order_id=event.order_id, reason=f"{prefix}: {event.reason}", from_statuses=UNPAID)


@shared_task(acks_late=True, time_limit=120, soft_time_limit=100)
def sweep_orders_task() -> dict:
    """Run by beat every SAGA_SWEEP_INTERVAL_SECONDS (apps.orders.services.recovery)."""
    return dict(orders_recover())
