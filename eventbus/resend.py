"""When the relay sends a row's task again (docs/design.md §7).

A row has been started since its last dispatch when it has a start mark: the relay clears the mark when it
claims a row, and a publisher's rows have none, so no two machines' clocks are ever compared. A row is due:

- never dispatched: OUTBOX_DISPATCH_GRACE_SECONDS after it was written (its process died before sending);
- dispatched, not started since, OUTBOX_START_GRACE_SECONDS after the dispatch, if its message cannot be
  among those waiting in its queue: a broker queue is first in, first out, so when a queue holds n
  messages they are those of its n rows dispatched last, and an unstarted row of that queue with n rows
  dispatched after it is neither waiting nor running: the broker lost it, or a delivery passed it by for
  a batch that then failed. An empty queue makes every unstarted row of it lost. Resending what waits in
  a backlog would double the load when the fleet is busiest; this resends only what cannot be waiting;
- dispatched, not started since, and the broker cannot say what its queue holds (not Redis, or
  unreachable): only after the started timeout, as if it had started;
- started and not handled, by a worker whose database connection is gone (the start mark records its
  backend): at once, since the worker died with the run (a crashed threads worker's tasks come back only
  after the broker's visibility timeout otherwise);
- started and not handled otherwise: once the started timeout has passed since its start mark, when its
  task's hard time limit has certainly ended the run (its worker died unseen, or its retry was lost).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL

from eventbus.listeners import ListenerTask
from eventbus.models import OutboxMessage
from eventbus.queue_depth import waiting_messages

# The bound of a run when no listener task has a hard time limit.
NO_TIME_LIMIT_SECONDS = 300.0
# The connection that wrote the start mark is closed: its process ended (or, rarely, the connection was cut
# and the run goes on: then it runs twice, which changes nothing twice).
_TABLE = f'"{OutboxMessage._meta.db_table}"'
_STARTED_BY = f'{_TABLE}."started_by"'
WORKER_GONE = RawSQL(
    f"{_STARTED_BY} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = {_STARTED_BY})",
    (),
    output_field=BooleanField(),
)


def started_timeout_seconds() -> float:
    """How long after its start mark a task has certainly ended: the longest hard time limit of any
    listener task, plus OUTBOX_HANDLE_MARGIN_SECONDS. (On a pool that cannot enforce the limit, threads
    or gevent, the listeners keep to it by bounding their remote calls.)"""
    default = current_app.conf.task_time_limit
    limits = [task.time_limit or default for task in _listener_tasks().values()]
    longest = max((limit for limit in limits if limit), default=NO_TIME_LIMIT_SECONDS)
    return float(longest) + settings.OUTBOX_HANDLE_MARGIN_SECONDS


@dataclass(frozen=True)
class ResendRule:
    started_timeout: float
    # Each listener's queue and how many messages wait in it; None: the broker cannot say.
    queue_of: dict[str, str]
    waiting: dict[str, int | None]

    @classmethod
    def current(cls) -> "ResendRule":
        """The rule as the broker's queues stand now (one round trip to the broker)."""
        queue_of = {name: _queue_of(task) for name, task in _listener_tasks().items()}
        return cls(
            started_timeout=started_timeout_seconds(), queue_of=queue_of, waiting=waiting_messages(queue_of.values())
        )

    def due(self, now: datetime) -> Q:
        started = Q(started_at__isnull=False)
        not_started = Q(dispatched_at__isnull=False, started_at__isnull=True)
        not_sent = Q(dispatched_at__isnull=True, created_at__lt=_ago(now, settings.OUTBOX_DISPATCH_GRACE_SECONDS))
        run_over = started & (Q(started_at__lt=_ago(now, self.started_timeout)) | Q(WORKER_GONE))
        lost = not_started & (
            Q(pk__in=self._cannot_be_waiting(_ago(now, settings.OUTBOX_START_GRACE_SECONDS)))
            | Q(dispatched_at__lt=_ago(now, self.started_timeout))
        )
        return Q(handled_at__isnull=True, parked_at__isnull=True) & (not_sent | run_over | lost)

    def _cannot_be_waiting(self, dispatched_before: datetime) -> RawSQL:
        """The unstarted rows, dispatched before the given time, of the queues whose depth is known, with
        at least as many of their queue's unstarted rows dispatched after them as its messages waiting."""
        known = [(listener, queue) for listener, queue in self.queue_of.items() if self.waiting.get(queue) is not None]
        listeners = [listener for listener, _ in known]
        queues = [queue for _, queue in known]
        depths = [self.waiting[queue] for queue in queues]
        return RawSQL(CANNOT_BE_WAITING, (listeners, queues, depths, dispatched_before))


CANNOT_BE_WAITING = f"""
SELECT id FROM (
    SELECT outbox.id, outbox.dispatched_at, queue.depth,
           row_number() OVER (PARTITION BY queue.name ORDER BY outbox.dispatched_at DESC, outbox.id DESC) AS position
    FROM {_TABLE} AS outbox
    JOIN unnest(%s::varchar[], %s::varchar[], %s::int[]) AS queue(listener, name, depth) USING (listener)
    WHERE outbox.handled_at IS NULL AND outbox.parked_at IS NULL
      AND outbox.started_at IS NULL AND outbox.dispatched_at IS NOT NULL
) AS ranked
WHERE position > depth AND dispatched_at < %s
"""


def _ago(now: datetime, seconds: float) -> datetime:
    return now - timedelta(seconds=seconds)


def _listener_tasks() -> dict[str, ListenerTask]:
    return {name: task for name, task in current_app.tasks.items() if isinstance(task, ListenerTask)}


def _queue_of(task: ListenerTask) -> str:
    """The queue the task's messages go to, as Celery's router picks it."""
    options = {"queue": task.queue} if getattr(task, "queue", None) else {}
    return current_app.amqp.router.route(options, task.name, task_type=task)["queue"].name
