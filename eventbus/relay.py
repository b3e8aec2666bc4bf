"""The outbox relay, run by beat: sends again every listener task that was not dispatched, or not
handled, in time. Listeners are idempotent, so a task sent twice changes nothing twice."""

from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from eventbus.models import OutboxMessage
from eventbus.outbox import Dispatch, dispatch_all


def _due(now) -> Q:
    not_sent = Q(
        dispatched_at__isnull=True, created_at__lt=now - timedelta(seconds=settings.OUTBOX_DISPATCH_GRACE_SECONDS)
    )
    not_handled = Q(dispatched_at__lt=now - timedelta(seconds=settings.OUTBOX_HANDLE_TIMEOUT_SECONDS))
    return Q(handled_at__isnull=True, parked_at__isnull=True) & (not_sent | not_handled)


@transaction.atomic
def outbox_relay(*, batch: int = 500) -> int:
    """Dispatch what is due; park what was dispatched too often without being handled. Returns how many
    tasks were sent. Rows are locked with SKIP LOCKED so that overlapping relays share the work."""
    now = timezone.now()
    due = list(OutboxMessage.objects.select_for_update(skip_locked=True).filter(_due(now)).order_by("pk")[:batch])
    worn_out = [m.pk for m in due if m.dispatch_count >= settings.OUTBOX_MAX_DISPATCHES]
    if worn_out:
        OutboxMessage.objects.filter(pk__in=worn_out).update(
            parked_at=now, last_error=f"not handled after {settings.OUTBOX_MAX_DISPATCHES} dispatches"
        )
    dispatches = [
        Dispatch(message_id=m.pk, task=current_app.tasks[m.listener], envelope=m.envelope)
        for m in due
        if m.pk not in worn_out
    ]
    dispatch_all(dispatches)
    return len(dispatches)


def outbox_retry(*, message_ids: list[int]) -> int:
    """An operator sends parked (or stuck) rows again; returns how many were sent."""
    with transaction.atomic():
        messages = list(OutboxMessage.objects.select_for_update().filter(pk__in=message_ids, handled_at__isnull=True))
        OutboxMessage.objects.filter(pk__in=[m.pk for m in messages]).update(parked_at=None, dispatch_count=0)
        dispatches = [Dispatch(m.pk, current_app.tasks[m.listener], m.envelope) for m in messages]
        transaction.on_commit(lambda: dispatch_all(dispatches))
    return len(dispatches)


def outbox_purge_handled() -> int:
    """Forget handled rows after OUTBOX_RETENTION_HOURS."""
    cutoff = timezone.now() - timedelta(hours=settings.OUTBOX_RETENTION_HOURS)
    deleted, _ = OutboxMessage.objects.filter(handled_at__lt=cutoff).delete()
    return deleted
