"""Writing, dispatching and marking the outbox's rows (eventbus.models.OutboxMessage)."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celery import Task
from django.db import DatabaseError, connection
from django.db.models import F
from django.utils import timezone

from eventbus.events import DomainEvent
from eventbus.models import OutboxMessage
from eventbus.routing import Listener

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dispatch:
    message_id: int
    task: Task
    envelope: dict[str, Any]
    inline: bool = False  # run in this process after the commit (eventbus.bus.inline)


def outbox_write(*, event: DomainEvent, envelope: dict[str, Any], listeners: Sequence[Listener]) -> list[Dispatch]:
    """One row per listener, all in one INSERT, in the caller's transaction."""
    messages = OutboxMessage.objects.bulk_create(
        OutboxMessage(
            event_id=envelope["event_id"],
            event_type=envelope["event_type"],
            listener=listener.task.name,
            order_id=getattr(event, "order_id", None),
            envelope=envelope,
        )
        for listener in listeners
    )
    return [
        Dispatch(message_id=message.pk, task=listener.task, envelope=envelope, inline=listener.inline)
        for message, listener in zip(messages, listeners, strict=True)
    ]


def dispatch(task: Task, envelope: dict[str, Any]) -> None:
    """Send a listener's task with an event's envelope to the broker, now."""
    task.apply_async(args=(envelope,))


def send_all(dispatches: Sequence[Dispatch]) -> list[int]:
    """Send each task to the broker; returns the ids of the messages sent. One that cannot be sent (the
    broker is down) is logged and left to the relay; it does not stop the others."""
    sent = []
    for pending in dispatches:
        try:
            dispatch(pending.task, pending.envelope)
        except Exception:
            logger.exception("Could not dispatch %s; the outbox relay will", pending.task.name)
        else:
            sent.append(pending.message_id)
    return sent


def dispatch_all(dispatches: Sequence[Dispatch]) -> None:
    """On commit of the publishing transaction: send the queued listeners' tasks and record which were
    sent, then run the inline listeners here."""
    _send_and_mark([pending for pending in dispatches if not pending.inline])
    for pending in dispatches:
        if pending.inline:
            run_inline(pending)


def run_inline(pending: Dispatch) -> None:
    """Run a listener in this process (its task base marks the row handled). If it fails, for any
    reason, its task goes to its queue, where the listener's own retry policy takes over; if this
    process dies first, the relay sends the row that was never marked dispatched."""
    try:
        pending.task(pending.envelope)
    except Exception as error:
        logger.warning("Inline listener %s failed; sending it to its queue", pending.task.name, exc_info=True)
        _send_and_mark([pending], failure=f"{type(error).__name__}: {error}")


def _send_and_mark(dispatches: Sequence[Dispatch], *, failure: str = "") -> None:
    """Send, and mark the rows sent dispatched; `failure`, the error of a run that failed here, is
    recorded on them as a listener's retry records its own (eventbus.outbox_mark_failed)."""
    # Taken before sending, so that a worker that starts a task at once marks it started after this dispatch.
    sending_at = timezone.now()
    sent = send_all(dispatches)
    if not sent:
        return
    changes: dict[str, Any] = {"dispatched_at": sending_at, "dispatch_count": F("dispatch_count") + 1}
    if failure:
        changes |= {"failure_count": F("failure_count") + 1, "last_error": failure[:2000]}
    try:
        OutboxMessage.objects.filter(pk__in=sent).update(**changes)
    except DatabaseError:
        # The tasks are on their way; without the mark, the relay sends them once more (harmless).
        logger.warning("Could not mark %d outbox rows dispatched", len(sent), exc_info=True)


# Every listener task writes these two marks: written as SQL of fixed text, they cost a fraction of the ORM's
# query building (bench/FINDINGS.md), and PostgreSQL prepares them once per connection.
_TABLE = connection.ops.quote_name(OutboxMessage._meta.db_table)
MARK_STARTED = (
    f"UPDATE {_TABLE} SET started_at = %s, started_by = pg_backend_pid()"  # its backend ends with its connection
    " WHERE event_id = %s AND listener = %s AND handled_at IS NULL"
)
MARK_HANDLED = (
    f"UPDATE {_TABLE} SET handled_at = %s WHERE handled_at IS NULL"
    " AND (event_id, listener) IN (SELECT * FROM unnest(%s::uuid[], %s::varchar[]))"
)


def outbox_mark_started(*, event_id: str, listener: str) -> None:
    """A worker starts the row's task: the relay leaves it alone until its time limit has passed, or until
    the database connection that wrote this mark is gone (its worker died)."""
    with connection.cursor() as cursor:
        cursor.execute(MARK_STARTED, [timezone.now(), event_id, listener])


def outbox_mark_handled(handled: Sequence[tuple[str, str]]) -> None:
    """Mark the rows of these (event id, listener) pairs handled, in one statement."""
    if not handled:
        return
    event_ids, listeners = zip(*handled, strict=True)
    with connection.cursor() as cursor:
        cursor.execute(MARK_HANDLED, [timezone.now(), list(event_ids), list(listeners)])


def outbox_mark_failed(*, event_id: str, listener: str, error: str, park: bool) -> None:
    """A failed run: parked if it was the last, else a retry is on its way. The retry waits its backoff
    in a worker, so the row counts as started (sent and started now): the relay leaves it to the task's
    time limit, and does not start a second chain of retries beside it."""
    now = timezone.now()
    changes: dict[str, Any] = {"failure_count": F("failure_count") + 1, "last_error": error[:2000]}
    # The backend that marked the run started is left as it is: if its worker dies, the relay sends the task
    # at once (a second copy beside the retry changes nothing twice); if the retry has started already, it
    # is the retry's.
    changes |= {"parked_at": now} if park else {"dispatched_at": now, "started_at": now}
    OutboxMessage.objects.filter(event_id=event_id, listener=listener, handled_at__isnull=True).update(**changes)
