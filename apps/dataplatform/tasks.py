import random

from celery import Task, shared_task
from django.conf import settings

from apps.dataplatform.services import (
    DeliveryFailed,
    delivery_attempt,
    delivery_give_up,
    delivery_record,
    platform_payload,
)
from apps.orders.events import OrderCanceled, OrderCompleted
from common.circuit import CallDeferred, wait_for_circuit
from common.tasks import LISTENER_TASK_OPTIONS
from eventbus.events import event_from_envelope


def _backoff(retries: int) -> float:
    """Exponential backoff with full jitter."""
    cap = min(settings.DATA_PLATFORM_BACKOFF_MAX_SECONDS, settings.DATA_PLATFORM_BACKOFF_SECONDS * 2**retries)
    return random.uniform(0, cap)


def _attempt_or_retry(task: Task, delivery_id: int) -> None:
    """A failed try is retried with backoff, up to DATA_PLATFORM_MAX_ATTEMPTS tries. A wait for the platform's
    circuit breaker is no try (wait_for_circuit): while the platform is down the fleet makes one call per
    cool-off, and the deliveries that wait spend none of their tries."""
    try:
        delivery_attempt(delivery_id=delivery_id)
    except CallDeferred as deferred:
        wait_for_circuit(task, deferred)
    except DeliveryFailed as failure:
        if task.request.retries + 1 >= settings.DATA_PLATFORM_MAX_ATTEMPTS:
            delivery_give_up(delivery_id=delivery_id, error=str(failure))
            return
        raise task.retry(countdown=_backoff(task.request.retries), max_retries=None) from failure


@shared_task(bind=True, **LISTENER_TASK_OPTIONS)
def deliver_order_task(self: Task, envelope: dict) -> None:
    """An order's completion, or the cancellation of a completed order: one delivery per order and event."""
    event: OrderCompleted | OrderCanceled = event_from_envelope(envelope)
    delivery = delivery_record(
        order_id=event.order_id, event_type=envelope["event_type"], payload=platform_payload(envelope["data"])
    )
    _attempt_or_retry(self, delivery.pk)


@shared_task(bind=True, **LISTENER_TASK_OPTIONS)
def send_delivery_task(self: Task, delivery_id: int) -> None:
    _attempt_or_retry(self, delivery_id)
