"""Recovery, run by beat: no saga hangs, whatever crashed and whatever Redis forgot.

- An order still CREATED some seconds after creation has its process hash rebuilt from the
  participants' own step records (a flushed Redis loses the hash, not the records) and is decided.
- An order still CREATED past SAGA_DEADLINE_SECONDS is failed and compensated; a step that arrives
  later finds its compensation's tombstone and is refused.
- An order still PAYMENT_WAITING past the deadline is settled by what the payments app says really
  happened: paid, it completes; otherwise it fails (a payment still in flight that succeeds later is
  cancelled, because the order can no longer be completed).
"""

from collections import Counter
from datetime import timedelta

import structlog
from django.conf import settings
from django.utils import timezone

from apps.orders.models import Order, OrderStatus
from apps.orders.services.saga import UNDECIDED, UNPAID, order_complete, order_fail, order_record_step
from apps.payments.selectors import payment_status
from common.participants import participant, step_names
from common.tasks import RETRYABLE_ERRORS

logger = structlog.get_logger(__name__)

DEADLINE_REASON = "the saga passed its deadline before every step reported"
UNPAID_REASON = "the payment did not complete before the saga's deadline"
RECOVERY_BATCH = 500


def order_reconcile(*, order_id: int) -> str | None:
    """Record every step whose participant has a record of it, and decide if none is pending.
    Returns the decision published, if this call made it."""
    order = Order.objects.only("id", "user_coupon_id", "participants").get(pk=order_id)
    installed = step_names()
    decision = None
    for step in order.taking_part:
        if step not in installed:
            continue  # its participant was removed since: nothing records its step any more
        outcome = participant(step).recorded_outcome(order_id=order_id)
        if outcome is not None:
            decision = (
                order_record_step(order_id=order_id, step=step, succeeded=outcome.succeeded, reason=outcome.reason)
                or decision
            )
    return decision


def order_settle_unpaid(*, order_id: int) -> str | None:
    """An order past its deadline while waiting for payment: complete it if it was paid, else fail it.
    Returns "completed" or "failed" if this call settled it."""
    if payment_status(order_id=order_id) == "COMPLETED":
        return "completed" if order_complete(order_id=order_id) else None
    return "failed" if order_fail(order_id=order_id, reason=UNPAID_REASON, from_statuses=UNPAID) else None


def orders_recover(*, now=None) -> Counter:
    """One sweep; returns what it did (reconciled, failed, completed), for logs and tests. An order that
    cannot be handled now (its lock is busy, a connection dropped) is left to the next sweep."""
    now = now or timezone.now()
    deadline = now - timedelta(seconds=settings.SAGA_DEADLINE_SECONDS)
    stale = now - timedelta(seconds=min(settings.SAGA_RECONCILE_AFTER_SECONDS, settings.SAGA_DEADLINE_SECONDS))
    done: Counter = Counter()
    undecided = Order.objects.filter(status=OrderStatus.CREATED, created_at__lt=stale).order_by("created_at")
    for order_id, created_at in undecided.values_list("pk", "created_at")[:RECOVERY_BATCH]:
        if _attempt(done, "reconciled", order_reconcile, order_id=order_id):
            continue
        if created_at < deadline:  # even when reconciling it failed: the deadline holds whatever went wrong
            _attempt(done, "failed", order_fail, order_id=order_id, reason=DEADLINE_REASON, from_statuses=UNDECIDED)
    unpaid = Order.objects.filter(status=OrderStatus.PAYMENT_WAITING, created_at__lt=deadline).order_by("created_at")
    for order_id in unpaid.values_list("pk", flat=True)[:RECOVERY_BATCH]:
        _attempt(done, None, order_settle_unpaid, order_id=order_id)
    return done


def _attempt(done: Counter, counted_as: str | None, action, **kwargs) -> bool:
    """Run one order's recovery action and count what it did (`counted_as`, or the name it returns). An
    order that cannot be handled now is left to the next sweep; one that fails for another reason is
    logged and counted as an error, and never keeps the sweep from the other orders (§5.5). Only what it
    did or could not do is logged: a sweep with nothing to do writes nothing."""
    ids = {"order_id": kwargs["order_id"], "action": action.__name__}
    try:
        result = action(**kwargs)
    except RETRYABLE_ERRORS as error:
        logger.info("order_recovery_postponed", **ids, error=f"{type(error).__name__}: {error}")  # next sweep
        return False
    except Exception:
        logger.exception("order_recovery_failed", **ids)
        done["errors"] += 1
        return False
    if result:
        done[counted_as or result] += 1
        logger.info("order_recovered", **ids, outcome=counted_as or result)
    return bool(result)
