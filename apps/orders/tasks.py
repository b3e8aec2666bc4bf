"""Listener tasks of the orders app."""

from dataclasses import asdict

from celery import shared_task

from apps.orders.monitor import consistency_monitor
from apps.orders.services import order_complete, order_fail, order_record_step, orders_recover
from apps.orders.services.saga import UNPAID
from apps.payments.events import PaymentCanceled, PaymentFailed, PaymentPaid
from common.participants import step_results
from common.queues import MAINTENANCE_QUEUE
from common.tasks import LISTENER_TASK_OPTIONS
from eventbus.events import event_from_envelope


@shared_task(**LISTENER_TASK_OPTIONS)
def record_step_result_task(envelope: dict) -> None:
    event = event_from_envelope(envelope)
    step, succeeded = step_results()[type(event)]
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


# On the maintenance queue, not the orders app's own: a backlog of saga tasks must not delay the sweep.
@shared_task(queue=MAINTENANCE_QUEUE, acks_late=True, time_limit=120, soft_time_limit=100)
def sweep_orders_task() -> dict:
    """Run by beat every SAGA_SWEEP_INTERVAL_SECONDS (apps.orders.services.recovery)."""
    return dict(orders_recover())


@shared_task(queue=MAINTENANCE_QUEUE, acks_late=True, time_limit=120, soft_time_limit=100)
def monitor_consistency_task() -> dict:
    """Run by beat every CONSISTENCY_MONITOR_INTERVAL_SECONDS (apps.orders.monitor)."""
    return asdict(consistency_monitor())
