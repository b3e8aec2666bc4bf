"""The base of every listener task: it marks its outbox row started, and closes it.

A task a worker takes from the broker first marks its row started (one statement; a redelivered task moves
the mark), which tells the relay that its message was not lost. A delivery whose row is handled already,
or held by another transaction right now (claimed for a batch, being marked or resent), runs nothing. A
batched listener's run also claims the listener's rows no worker has started and handles them all in one
transaction (docs/design.md §8): each order keeps its own step record and events, and the deliveries of
the claimed rows, when they come, find them handled. On success the row is marked handled, so
the relay stops sending it. Listeners that run inline inside another listener's task
(eventbus.bus.inline) hand their marks to that outermost task, which writes them all with its own in one
statement when it ends, however it ends. An inline listener writes no start mark: its row is never
dispatched, so the relay's dispatch grace covers it (until then the relay may send an inline listener's
row again if the task runs past the dispatch grace: a harmless repeat). A retry records the error and
leaves the row to the task's own backoff. A final failure parks the row: an operator sees it in admin and
can send it again; nothing is dropped in silence.
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, TypeVar

import structlog
from celery import Task
from django.conf import settings
from django.db import DatabaseError, InterfaceError, close_old_connections, transaction

from eventbus.causation import handling
from eventbus.log_context import handling_logged, log_ids
from eventbus.outbox import (
    dispatch,
    outbox_claim_waiting,
    outbox_mark_failed,
    outbox_mark_handled,
    outbox_mark_started,
)

logger = structlog.get_logger(__name__)
T = TypeVar("T")
_running = threading.local()  # the handled marks of the outermost listener running in this thread


def _send_again(task: Task, envelope: dict[str, Any]) -> None:
    try:
        dispatch(task, envelope)
    except Exception:
        logger.warning("listener_not_sent_again", listener=task.name, **log_ids(envelope), exc_info=True)


def _envelope_of(args: tuple, kwargs: dict) -> dict[str, Any] | None:
    envelope = args[0] if args else kwargs.get("envelope")
    return envelope if isinstance(envelope, dict) and "event_id" in envelope else None


def _bookkeep(write: Callable[[], T], *, failed: T = None) -> T:
    """Write to the outbox beside the work, and return what the write returns: once more on a fresh
    connection if the first one died (its database connection may have been cut while the task ran); if
    that fails too, `failed`: the row stays as it was, and the relay sends the task again, which changes
    nothing the second time."""
    for attempt in (1, 2):
        try:
            return write()
        except (DatabaseError, InterfaceError):  # InterfaceError: the connection is already closed
            if attempt == 2:
                logger.warning("outbox_mark_not_written", exc_info=True)  # the relay will send the task again
                return failed
            close_old_connections()
    return failed


@contextmanager
def _handled_marks() -> Iterator[list[tuple[str, str]]]:
    """The list to add (event id, listener) marks to: the outermost listener's, written when it ends."""
    marks = getattr(_running, "marks", None)
    if marks is not None:
        yield marks
        return
    _running.marks = marks = []
    try:
        yield marks
    finally:
        _running.marks = None
        _bookkeep(lambda: outbox_mark_handled(marks))


class ListenerTask(Task):
    # A batched listener's function takes any number of envelopes, and handles them in one transaction
    # (common.tasks.BATCHED_LISTENER_TASK_OPTIONS): a run taken from the broker also claims the listener's
    # other rows no worker has started, up to LISTENER_BATCH_SIZE in all, never waiting for more.
    batched = False

    def __call__(self, *args, **kwargs):
        envelope = _envelope_of(args, kwargs)
        envelopes = [envelope] if envelope is not None else []
        # Every line the run writes names its event and order (eventbus.log_context); unbound when it ends.
        with handling_logged(envelopes):
            if envelope is not None and self._taken_from_broker():
                if not self._start(envelope):
                    return None  # handled already (by a batch, or before a redelivery), or being handled now
                if self.batched:
                    return self._run_batch(envelope)
            with _handled_marks() as marks, handling(envelopes):
                result = super().__call__(*args, **kwargs)
                if envelope is not None:
                    marks.append((envelope["event_id"], self.name))
            return result

    def _start(self, envelope: dict[str, Any]) -> bool:
        """Mark the row started; False if this delivery has nothing to run. If the mark cannot be
        written, the task runs: a repeat changes nothing the second time."""
        return _bookkeep(lambda: outbox_mark_started(event_id=envelope["event_id"], listener=self.name), failed=True)

    def _run_batch(self, envelope: dict[str, Any]):
        """Run the task for its own row and the claimed ones in one transaction; the claim marks the
        claimed rows handled in it, so they count as handled only if it commits. The own row is marked
        after the commit, with the inline listeners' rows, as any task's: holding it through the batch
        would make its publisher, still marking it dispatched, wait for the batch; and a claim may keep a
        row it locked and then found started, which only a statement holding nothing may wait for. If
        the batch fails, the claims roll back with the work, and the claimed rows' tasks are sent again,
        since their own deliveries may have found them claimed and passed them by."""
        claimed: list[dict[str, Any]] = []
        # The batch's ids stay bound until after the commit, for the inline listeners it runs (logged).
        with _handled_marks() as marks, ExitStack() as logged:  # marks: the outermost listener's
            try:
                with transaction.atomic():
                    others = settings.LISTENER_BATCH_SIZE - 1
                    claimed = outbox_claim_waiting(listener=self.name, limit=others) if others > 0 else []
                    logged.enter_context(handling_logged([envelope, *claimed]))
                    with handling([envelope, *claimed]):
                        result = super().__call__(envelope, *claimed)
            except BaseException:
                for each in claimed:
                    _send_again(self, each)
                raise
            marks.append((envelope["event_id"], self.name))
        return result

    def _taken_from_broker(self) -> bool:
        """Run by a worker (or `apply`), not called inline by a publisher (a direct call)."""
        return not self.request.called_directly and getattr(_running, "marks", None) is None

    def on_retry(self, exc, task_id, args, kwargs, einfo) -> None:
        self._record_failure(exc, args, kwargs, park=False)

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        self._record_failure(exc, args, kwargs, park=True)

    def _record_failure(self, exc: BaseException, args: tuple, kwargs: dict, *, park: bool) -> None:
        envelope = _envelope_of(args, kwargs)
        if envelope is not None:
            error = f"{type(exc).__name__}: {exc}"
            _bookkeep(
                lambda: outbox_mark_failed(event_id=envelope["event_id"], listener=self.name, error=error, park=park)
            )
