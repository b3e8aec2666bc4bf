"""Writing, dispatching and marking the outbox's rows (eventbus.models.OutboxMessage)."""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from celery import Task
from django.db import DatabaseError, connection
from django.db.models import F
from django.utils import timezone

from eventbus.events import DomainEvent
from eventbus.log_context import log_ids
from eventbus.models import EventRecord, OutboxMessage
from eventbus.routing import Listener

logger = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Dispatch:
    message_id: int
    task: Task
    envelope: dict[str, Any]
    inline: bool = False  # run in this process after the commit (eventbus.bus.inline)


@dataclass(frozen=True)
class Publication:
    event: DomainEvent
    envelope: dict[str, Any]
    listeners: Sequence[Listener]


def outbox_write(publications: Sequence[Publication]) -> list[Dispatch]:
    """Append each event to the history, and write one outbox row per listener of each event, in one
    statement, in the caller's transaction. Each envelope is serialised once."""
    envelopes = [json.dumps(publication.envelope) for publication in publications]
    wanted = [(index, listener) for index, publication in enumerate(publications) for listener in publication.listeners]
    envelope_of = [publications[index].envelope for index, _ in wanted]
    with connection.cursor() as cursor:
        cursor.execute(
            WRITE_HISTORY_AND_OUTBOX,
            [
                envelopes,
                timezone.now(),
                [envelope["event_id"] for envelope in envelope_of],
                [envelope["event_type"] for envelope in envelope_of],
                [listener.task.name for _, listener in wanted],
                [envelope["data"].get("order_id") for envelope in envelope_of],
                [envelopes[index] for index, _ in wanted],
            ],
        )
        message_ids = [message_id for (message_id,) in cursor.fetchall()]
    return [
        Dispatch(
            message_id=message_id, task=listener.task, envelope=publications[index].envelope, inline=listener.inline
        )
        for message_id, (index, listener) in zip(message_ids, wanted, strict=True)
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
            # The relay sends it later.
            logger.exception("listener_not_dispatched", listener=pending.task.name, **log_ids(pending.envelope))
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
        logger.warning(
            "inline_listener_failed", listener=pending.task.name, **log_ids(pending.envelope), exc_info=True
        )  # sent to its queue
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
        logger.warning("outbox_dispatch_not_marked", rows=len(sent), exc_info=True)


# Every listener task writes these marks: written as SQL of fixed text, they cost a fraction of the ORM's
# query building (bench/FINDINGS.md), and PostgreSQL prepares them once per connection.
_TABLE = connection.ops.quote_name(OutboxMessage._meta.db_table)
_HISTORY = connection.ops.quote_name(EventRecord._meta.db_table)
# Every publication writes this one statement of fixed text (prepared once per connection): the events into the
# history (its columns read from each envelope), and their listeners' rows into the outbox, in the order
# given (RETURNING keeps it).
WRITE_HISTORY_AND_OUTBOX = f"""
WITH history AS (
    INSERT INTO {_HISTORY}
        (event_id, event_type, occurred_at, source, correlation_id, causation_id, order_id, data)
    SELECT (e->>'event_id')::uuid, e->>'event_type', (e->>'occurred_at')::timestamptz, e->>'source',
        e->>'correlation_id', (e->>'causation_id')::uuid, (e->'data'->>'order_id')::bigint, e->'data'
    FROM unnest(%s::jsonb[]) AS e
)
INSERT INTO {_TABLE}
    (event_id, event_type, listener, order_id, envelope, created_at, dispatch_count, failure_count, last_error)
SELECT event_id, event_type, listener, order_id, envelope, %s, 0, 0, ''
FROM unnest(%s::uuid[], %s::varchar[], %s::varchar[], %s::bigint[], %s::jsonb[])
    AS given(event_id, event_type, listener, order_id, envelope)
RETURNING id
"""
# A delivery passes a row by when it is handled already, or when another transaction holds it FOR UPDATE: a
# batch that claimed it (and will handle it, or send it again if it fails), or the relay resending it. The
# start mark asks for FOR KEY SHARE, the weakest row lock, which only FOR UPDATE blocks: the brief marks
# other processes write (dispatched, handled, failed) are waited for, not taken for a claim. A handled row is
# not locked at all: the delivery then writes nothing, and its commit waits for no WAL flush. A row that
# does not exist (pruned, or a task sent by hand) is run all the same. The mark names the backend of the
# worker's connection, which ends with it.
MARK_STARTED = f"""
WITH target AS (
    SELECT id FROM {_TABLE} WHERE event_id = %s AND listener = %s AND handled_at IS NULL FOR KEY SHARE SKIP LOCKED
), started AS (
    UPDATE {_TABLE} AS marked SET started_at = %s, started_by = pg_backend_pid()
    FROM target WHERE marked.id = target.id AND marked.handled_at IS NULL
    RETURNING marked.id
)
SELECT EXISTS (SELECT 1 FROM started)
    OR NOT EXISTS (SELECT 1 FROM {_TABLE} WHERE event_id = %s AND listener = %s)
"""
MARK_HANDLED = (
    f"UPDATE {_TABLE} SET handled_at = %s WHERE handled_at IS NULL"
    " AND (event_id, listener) IN (SELECT * FROM unnest(%s::uuid[], %s::varchar[]))"
)
# The listener's other rows that no worker has started (their messages wait in the queue, or were lost), oldest
# first, skipping those another transaction holds: claimed and marked handled in the caller's transaction,
# so they count as handled only if it commits, and return to waiting if it rolls back. A row its publisher
# has not yet marked dispatched is left to it: the publisher (an API request) would otherwise wait for the
# batch to end before it could mark its row.
CLAIM_WAITING = f"""
UPDATE {_TABLE} SET started_at = %s, started_by = pg_backend_pid(), handled_at = %s
WHERE id IN (
    SELECT id FROM {_TABLE}
    WHERE listener = %s AND handled_at IS NULL AND parked_at IS NULL AND started_at IS NULL
      AND dispatched_at IS NOT NULL
    ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
)
RETURNING envelope
"""


def outbox_mark_started(*, event_id: str, listener: str) -> bool:
    """A worker starts the row's task: the relay leaves it alone until its time limit has passed, or until
    the database connection that wrote this mark is gone (its worker died). False: the row needs no run
    from this delivery, since it was handled already or another transaction holds it."""
    with connection.cursor() as cursor:
        cursor.execute(MARK_STARTED, [event_id, listener, timezone.now(), event_id, listener])
        return cursor.fetchone()[0]


def outbox_claim_waiting(*, listener: str, limit: int) -> list[dict[str, Any]]:
    """Claim up to `limit` of the listener's waiting rows for this connection, marked handled; returns
    their envelopes. Call inside the transaction that handles them."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(CLAIM_WAITING, [now, now, listener, limit])
        return [envelope if isinstance(envelope, dict) else json.loads(envelope) for (envelope,) in cursor.fetchall()]


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
