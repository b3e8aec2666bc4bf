"""The outbox relay, run by beat: sends again every listener task that was not dispatched, whose message
was lost, or whose run died (when: eventbus.resend). Listeners are idempotent, so a task sent twice
changes nothing twice. Each row sent again or parked is logged with its event's ids; a run with nothing
to do logs nothing."""

from datetime import timedelta

import structlog
from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from eventbus.log_context import log_ids
from eventbus.models import EventRecord, OutboxMessage
from eventbus.outbox import Dispatch, send_all
from eventbus.resend import ResendRule

logger = structlog.get_logger(__name__)


def _claim(messages: list[OutboxMessage], now) -> list[Dispatch]:
    """Mark the messages dispatched (in the caller's transaction) and return their dispatches; park
    those that cannot be dispatched: worn out, or for a listener this code base no longer has."""
    dispatches, worn_out, unknown = [], [], []
    for message in messages:
        task = current_app.tasks.get(message.listener)
        if task is None:
            unknown.append(message)
        elif message.dispatch_count >= settings.OUTBOX_MAX_DISPATCHES:
            worn_out.append(message)
        else:
            dispatches.append(Dispatch(message_id=message.pk, task=task, envelope=message.envelope))
    for parked, reason in (
        (worn_out, f"not handled after {settings.OUTBOX_MAX_DISPATCHES} dispatches"),
        (unknown, "no such listener task"),
    ):
        OutboxMessage.objects.filter(pk__in=[m.pk for m in parked], handled_at__isnull=True).update(
            parked_at=now, last_error=reason
        )
        for message in parked:
            logger.warning("outbox_row_parked", listener=message.listener, reason=reason, **log_ids(message.envelope))
    # The start mark is cleared with the claim, so that a mark written afterwards is this dispatch's: "started
    # since dispatched" is then a mark that exists, never a comparison of two machines' clocks.
    OutboxMessage.objects.filter(pk__in=[d.message_id for d in dispatches]).update(
        dispatched_at=now, dispatch_count=F("dispatch_count") + 1, parked_at=None, started_at=None, started_by=None
    )
    return dispatches


def _send_claimed(dispatches: list[Dispatch]) -> int:
    """Send the claimed rows' tasks; returns how many were sent. A row that could not be sent (the broker
    refused it) is released: due again at the next run, its dispatch budget as it was."""
    sent = set(send_all(dispatches))
    for pending in dispatches:
        if pending.message_id in sent:
            logger.info("listener_sent_again", listener=pending.task.name, **log_ids(pending.envelope))
    unsent = [pending.message_id for pending in dispatches if pending.message_id not in sent]
    if unsent:
        OutboxMessage.objects.filter(pk__in=unsent, handled_at__isnull=True).update(
            dispatched_at=None, dispatch_count=F("dispatch_count") - 1
        )
    return len(sent)


def outbox_relay(*, batch: int = 500) -> int:
    """Dispatch what is due; returns how many tasks were sent. The rows are claimed in a short
    transaction (SKIP LOCKED, so overlapping relays share the work) and sent after it commits; the broker's
    queues are read before it."""
    rule = ResendRule.current()
    with transaction.atomic():
        due = OutboxMessage.objects.select_for_update(skip_locked=True).filter(rule.due(timezone.now())).order_by("pk")
        dispatches = _claim(list(due[:batch]), timezone.now())
    return _send_claimed(dispatches)


def outbox_retry(*, message_ids: list[int]) -> int:
    """An operator sends parked (or stuck) rows again, with a fresh dispatch budget; returns how many."""
    with transaction.atomic():
        messages = list(OutboxMessage.objects.select_for_update().filter(pk__in=message_ids, handled_at__isnull=True))
        OutboxMessage.objects.filter(pk__in=[m.pk for m in messages]).update(dispatch_count=0)
        for message in messages:
            message.dispatch_count = 0
        dispatches = _claim(messages, timezone.now())
    return _send_claimed(dispatches)


def outbox_purge_handled() -> int:
    """Forget handled rows after OUTBOX_RETENTION_HOURS."""
    cutoff = timezone.now() - timedelta(hours=settings.OUTBOX_RETENTION_HOURS)
    deleted, _ = OutboxMessage.objects.filter(handled_at__lt=cutoff).delete()
    return deleted


def event_history_purge() -> int:
    """Forget history older than EVENT_HISTORY_RETENTION_DAYS."""
    cutoff = timezone.now() - timedelta(days=settings.EVENT_HISTORY_RETENTION_DAYS)
    deleted, _ = EventRecord.objects.filter(occurred_at__lt=cutoff).delete()
    return deleted
