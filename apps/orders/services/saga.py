"""The orders app's part of the saga: gather the participants' step results, decide once, complete or fail."""

import structlog
from django.db import transaction
from django.utils import timezone
from redis.exceptions import RedisError

from apps.orders.events import OrderCompleteFailed, OrderFailed, OrderPaymentWaited
from apps.orders.models import Order, OrderStatus
from apps.orders.process import FAILED, PENDING, SUCCESS, order_lock, read_steps, record_step
from apps.orders.services.moves import order_moved
from apps.orders.services.order_events import order_completed_event
from common.participants import implied_steps, step_names
from eventbus import publish

logger = structlog.get_logger(__name__)


def _implied(order: Order, steps: dict[str, str]) -> dict[str, str]:
    """A step that does not concern the order (no coupon to use, say) and never reported counts as SUCCESS."""
    return implied_steps(steps, order.taking_part, success=SUCCESS, pending=PENDING)


def order_steps(order: Order, live_steps: dict[str, str] | None = None) -> dict[str, str]:
    """The steps as the API shows them, one per installed participant: the process hash while the saga
    runs, the stored outcome after (a participant installed since counts as not concerned)."""
    if order.steps is not None:
        return _implied(order, {step: order.steps.get(step, PENDING) for step in step_names()})
    if live_steps is None:
        live_steps = read_steps([order.pk])[order.pk]
    return _implied(order, live_steps)


def order_record_step(*, order_id: int, step: str, succeeded: bool, reason: str = "") -> str | None:
    """Record one step's result and, once no step is pending, decide: OrderPaymentWaited if all
    succeeded, OrderFailed otherwise. Returns the event type published, if this call decided."""
    with order_lock(order_id):
        steps, reasons = record_step(order_id, step, succeeded=succeeded, reason=reason)
        # Which steps to wait for is the order's own record: the participants installed now may differ
        # from those of its creation (a participant added or removed since).
        order = (
            Order.objects.filter(pk=order_id)
            .only("id", "user_id", "user_coupon_id", "total_price", "participants", "created_at")
            .first()
        )
        if order is None:
            logger.warning("step_result_for_unknown_order", order_id=order_id, step=step)
            return None
        steps = _implied(order, steps)
        if PENDING in steps.values():
            return None
        with transaction.atomic():
            return _decide(order, steps, reasons)


def _decide(order: Order, steps: dict[str, str], reasons: dict[str, str]) -> str | None:
    now = timezone.now()
    # The conditional update is the fence: only the caller that moves the order out of CREATED publishes,
    # even if the lock's lease ran out and two callers got here.
    undecided = Order.objects.filter(pk=order.pk, status=OrderStatus.CREATED)
    if FAILED in steps.values():
        reason = "; ".join(
            f"{step} step failed: {reasons.get(step, 'no reason given')}"
            for step, state in steps.items()
            if state == FAILED
        )
        if undecided.update(
            status=OrderStatus.FAILED, failure_reason=reason, steps=steps, decided_at=now, failed_at=now
        ):
            publish(_failed_event(order, reason))
            order_moved(
                order_id=order.pk, status=OrderStatus.FAILED, created_at=order.created_at, at=now, reason=reason
            )
            return OrderFailed.event_type()
        return None
    if undecided.update(status=OrderStatus.PAYMENT_WAITING, steps=steps, decided_at=now):
        publish(OrderPaymentWaited(order_id=order.pk, user_id=order.user_id, total_price=order.total_price))
        order_moved(order_id=order.pk, status=OrderStatus.PAYMENT_WAITING, created_at=order.created_at, at=now)
        return OrderPaymentWaited.event_type()
    return None


@transaction.atomic
def order_complete(*, order_id: int) -> bool:
    """The order is paid: COMPLETED and OrderCompleted, once. An order that can no longer be completed
    (it was failed meanwhile, e.g. by its deadline while its payment was in flight) publishes
    OrderCompleteFailed so that its payment is cancelled. Returns True when this call completed it."""
    now = timezone.now()
    completed = Order.objects.filter(pk=order_id, status=OrderStatus.PAYMENT_WAITING).update(
        status=OrderStatus.COMPLETED, completed_at=now
    )
    order = Order.objects.prefetch_related("items").get(pk=order_id)
    if completed:
        publish(order_completed_event(order, order.items.all()))
        order_moved(order_id=order.pk, status=OrderStatus.COMPLETED, created_at=order.created_at, at=now)
        return True
    if order.status in (OrderStatus.COMPLETED, OrderStatus.CANCELED):
        return False  # a repeated PaymentPaid (CANCELED: completed, then cancelled by its customer)
    publish(OrderCompleteFailed(order_id=order.pk, reason=f"the order is {order.status} and cannot be completed"))
    return False


UNDECIDED = (OrderStatus.CREATED,)
UNPAID = (OrderStatus.PAYMENT_WAITING,)


@transaction.atomic
def order_fail(*, order_id: int, reason: str, from_statuses: tuple[str, ...]) -> bool:
    """Fail the order if it is still in one of `from_statuses` and publish OrderFailed, once: an
    undecided order (UNDECIDED: the deadline, an operator) or an unpaid one (UNPAID: its payment
    failed or was cancelled). Returns True if this call failed it."""
    order = (
        Order.objects.filter(pk=order_id)
        .only("id", "user_id", "user_coupon_id", "steps", "participants", "created_at")
        .first()
    )
    if order is None:
        return False
    now = timezone.now()
    changes = {"status": OrderStatus.FAILED, "failure_reason": reason, "failed_at": now}
    if order.steps is None:
        changes |= {"steps": _steps_if_readable(order), "decided_at": now}
    failed = Order.objects.filter(pk=order_id, status__in=from_statuses).update(**changes)
    if failed:
        publish(_failed_event(order, reason))
        order_moved(order_id=order.pk, status=OrderStatus.FAILED, created_at=order.created_at, at=now, reason=reason)
    return bool(failed)


def _failed_event(order: Order, reason: str) -> OrderFailed:
    return OrderFailed(
        order_id=order.pk,
        user_id=order.user_id,
        user_coupon_id=order.user_coupon_id,
        reason=reason,
        participants=order.taking_part,
    )


def _steps_if_readable(order: Order) -> dict[str, str] | None:
    """The steps so far, for the record; failing an order must not depend on Redis being up."""
    try:
        return order_steps(order)
    except RedisError:
        logger.warning("order_steps_unreadable", order_id=order.pk, reason="Redis is unreachable")
        return None
