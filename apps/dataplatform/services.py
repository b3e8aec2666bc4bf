"""Sends completed orders, and the cancellations of completed orders, to the external data platform
(DATA_PLATFORM_URL), with retries and a dead-letter state that operators can see and send again.

Each delivery POSTs the event's data, with the event's type in an `Event-Type` header and an
Idempotency-Key the platform can deduplicate on. An order's cancellation is sent only once its
completion has been delivered (or given up on), so the platform never hears of a cancellation first.
"""

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.dataplatform.models import Delivery, DeliveryStatus
from apps.orders.events import OrderCanceled, OrderCompleted
from common.circuit import DATA_PLATFORM, CircuitOpen
from common.db import insert_or_skip
from common.errors import ApplicationError, RetryableError

DONE = (DeliveryStatus.SENT, DeliveryStatus.RECORDED)
# A dead delivery waits for an operator (delivery_resend); a late redelivery of its event does not revive it.
SETTLED = (*DONE, DeliveryStatus.DEAD)


class DeliveryFailed(RetryableError):
    pass


class DeliveryRefused(Exception):
    """The platform answered 4xx: sending the same payload again will not help."""


COMPLETED, CANCELED = OrderCompleted.event_type(), OrderCanceled.event_type()


def platform_payload(data: dict) -> dict:
    """What the data platform receives of an order event: the order, without the saga's own bookkeeping
    (which participants took part)."""
    return {key: value for key, value in data.items() if key != "participants"}


def delivery_record(*, order_id: int, payload: dict, event_type: str = COMPLETED) -> Delivery:
    """The delivery of an order's event: created by the event's first delivery, found by a repeat."""
    delivery = Delivery(order_id=order_id, event_type=event_type, payload=payload)
    if insert_or_skip(delivery, unique=("order_id", "event_type")):
        return delivery
    return Delivery.objects.get(order_id=order_id, event_type=event_type)


def _idempotency_key(delivery: Delivery) -> str:
    return f"order-{delivery.order_id}" if delivery.event_type == COMPLETED else f"order-{delivery.order_id}-canceled"


def _completion_pending(delivery: Delivery) -> bool:
    """A cancellation waits for its order's completion to be delivered or given up on."""
    if delivery.event_type != CANCELED:
        return False
    return not Delivery.objects.filter(order_id=delivery.order_id, event_type=COMPLETED, status__in=SETTLED).exists()


def _post(url: str, delivery: Delivery) -> None:
    try:
        response = requests.post(
            url,
            json=delivery.payload,
            timeout=settings.DATA_PLATFORM_TIMEOUT_SECONDS,
            headers={"Idempotency-Key": _idempotency_key(delivery), "Event-Type": delivery.event_type},
        )
    except requests.RequestException as error:
        raise DeliveryFailed(f"{type(error).__name__}: {error}") from error
    if response.status_code >= 500 or response.status_code in (408, 429):
        raise DeliveryFailed(f"HTTP {response.status_code}: {response.text[:200]}")
    if response.status_code >= 400:
        raise DeliveryRefused(f"HTTP {response.status_code}: {response.text[:200]}")


def delivery_attempt(*, delivery_id: int) -> str:
    """One try. Returns the new status; raises DeliveryFailed when a later try may succeed, and
    CallDeferred when the platform's circuit breaker (common.circuit) let no call through: then nothing
    was sent and no try is counted."""
    delivery = Delivery.objects.get(pk=delivery_id)
    if delivery.status in SETTLED:
        return delivery.status
    if _completion_pending(delivery):
        waiting = "waiting for the order's completion to be delivered first"
        Delivery.objects.filter(pk=delivery_id).update(status=DeliveryStatus.RETRYING, last_error=waiting)
        raise DeliveryFailed(waiting)
    url = settings.DATA_PLATFORM_URL
    if not url:
        Delivery.objects.filter(pk=delivery_id).update(status=DeliveryStatus.RECORDED, delivered_at=timezone.now())
        return DeliveryStatus.RECORDED
    try:
        with DATA_PLATFORM.calling(key=_idempotency_key(delivery), outage=DeliveryFailed) as call:
            if call.just_answered:  # another run sent it a moment ago?
                status = Delivery.objects.values_list("status", flat=True).get(pk=delivery_id)
                if status in SETTLED:
                    call.skip()
                    return status
            return _send(url, delivery)
    except CircuitOpen as waiting:
        Delivery.objects.filter(pk=delivery_id).update(status=DeliveryStatus.RETRYING, last_error=str(waiting))
        raise
    except DeliveryFailed as failure:
        Delivery.objects.filter(pk=delivery_id).update(status=DeliveryStatus.RETRYING, last_error=str(failure))
        raise


def _send(url: str, delivery: Delivery) -> str:
    """POST the delivery and record the answer: SENT, or DEAD if the platform refused it (4xx)."""
    Delivery.objects.filter(pk=delivery.pk).update(attempts=F("attempts") + 1)
    try:
        _post(url, delivery)
    except DeliveryRefused as refusal:
        Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.DEAD, last_error=str(refusal))
        return DeliveryStatus.DEAD
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.SENT, delivered_at=timezone.now(), last_error=""
    )
    return DeliveryStatus.SENT


def delivery_give_up(*, delivery_id: int, error: str) -> None:
    Delivery.objects.filter(pk=delivery_id).exclude(status__in=DONE).update(
        status=DeliveryStatus.DEAD, last_error=error
    )


def delivery_resend(*, delivery_id: int) -> None:
    """An operator sends a dead delivery again, with a fresh round of tries."""
    from apps.dataplatform.tasks import send_delivery_task

    with transaction.atomic():
        if not Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.DEAD).update(
            status=DeliveryStatus.PENDING, attempts=0, last_error=""
        ):
            raise ApplicationError("Only a dead delivery can be sent again.", code="delivery_not_dead")
        transaction.on_commit(lambda: send_delivery_task.delay(delivery_id))
