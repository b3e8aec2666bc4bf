"""The faults, injected from a thread at fractions of the load's progress.

- kill: SIGKILL one prefork pool process of a worker (its task is redelivered; the pool forks anew);
- crash: SIGKILL a worker's main process with its pool or threads, then start it again (a supervisor's
  restart); any worker, the remote calls' threads worker included;
- flush: FLUSHDB on the run's Redis db: queued tasks, process hashes, locks, the broker's bindings and the
  daily rank go; then a customer reads the popular list (`after_flush`), and the API rebuilds the rank's
  lost days from PostgreSQL while orders go on (the invariants check it equals PostgreSQL in the end);
- cut: pg_terminate_backend on every connection the workers hold to the run's database (at least one).

On `--broker amqp` the flush loses the process hashes, locks and rank but not the messages, which RabbitMQ
holds, and the broker's own faults join them:

- restart: RabbitMQ's application stopped and started again a few seconds later (`rabbitmqctl stop_app`,
  `start_app`): every connection is cut; what waits in the durable queues survives, what was in flight
  (published unconfirmed, delivered unacknowledged) may be lost or delivered again, and the relay sends
  what was lost again;
- purge: the saga's queue with the most messages waiting purged (`rabbitmqctl purge_queue`): they are
  lost, and the relay sends them again.

They touch only the run's own Redis db, database and vhost, so that runs from other checkouts go on
unharmed; except the restart, which cuts every connection to the node: other runs on RabbitMQ see a broker
restart too, which they must survive as well.
"""

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
import redis
import requests

from chaos import rabbitmq
from chaos.environment import AMQP_BROKER, WORKER_APP_NAME
from chaos.load import LoadResult
from chaos.processes import Fleet

CUT_PATIENCE = 10.0  # seconds
CUT_QUERY = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE application_name = %(application_name)s AND datname = %(db_name)s"
)
BROKER_DOWN_SECONDS = 3.0
PURGE_PATIENCE = 10.0  # seconds to wait for a saga queue with messages waiting
QUICK_SCHEDULE = ((0.3, "kill"), (0.5, "flush"), (0.7, "cut"), (0.85, "crash"))
FULL_SCHEDULE = (
    (0.12, "kill"),
    (0.22, "flush"),
    (0.32, "cut"),
    (0.42, "kill"),
    (0.52, "crash"),
    (0.62, "flush"),
    (0.72, "cut"),
    (0.82, "kill"),
    (0.9, "crash"),
)


# The broker's own faults, on RabbitMQ only. A restart keeps the faults after it waiting while the broker
# is down (about 5 s, half the quick run's load): early, so that the others still hit a busy saga.
QUICK_BROKER_FAULTS = ((0.1, "restart"), (0.6, "purge"))
FULL_BROKER_FAULTS = ((0.27, "restart"), (0.35, "purge"), (0.77, "restart"), (0.86, "purge"))


def schedule_of(*, quick: bool, broker: str) -> tuple[tuple[float, str], ...]:
    """The faults of a run, in the order of the load's progress."""
    schedule = QUICK_SCHEDULE if quick else FULL_SCHEDULE
    if broker == AMQP_BROKER:
        schedule += QUICK_BROKER_FAULTS if quick else FULL_BROKER_FAULTS
    return tuple(sorted(schedule))


@dataclass(frozen=True)
class Injected:
    kind: str
    at_progress: float  # share of orders answered when it was injected
    at: float  # time.monotonic()
    wall: datetime  # the same moment on the database's clock (both are this machine's)
    detail: str
    ended: datetime  # when the fault was over: a broker restart lasts seconds, the others a moment


@dataclass
class FaultInjector:
    fleet: Fleet
    schedule: tuple[tuple[float, str], ...]
    load: LoadResult
    rng: random.Random
    after_flush: Callable[[], str] | None = None  # what happens right after a flush; its result, for the log
    injected: list[Injected] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="faults", daemon=True)
        self._thread.start()

    def finish(self) -> None:
        """Wait for every fault of the schedule (the ones not reached by the load are injected now)."""
        if self._thread:
            self._thread.join()

    def abort(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    @property
    def last_at(self) -> float | None:
        return self.injected[-1].at if self.injected else None

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(sorted({kind for _, kind in self.schedule}), 0)
        for fault in self.injected:
            counts[fault.kind] += 1
        return counts

    def _run(self) -> None:
        for fraction, kind in self.schedule:
            while self.load.progress < fraction * self.load.total and not self.load.ended_at:
                if self._stop.wait(0.05):
                    return
            progress, at, wall = self.load.progress / self.load.total, time.monotonic(), datetime.now(UTC)
            try:
                detail = getattr(self, f"_{kind}")()
            except Exception as error:  # reported; the run goes on and fails on what it did not do
                self.errors.append(f"{kind} at {fraction:.0%}: {error!r}")
                continue
            fault = Injected(kind=kind, at_progress=progress, at=at, wall=wall, detail=detail, ended=datetime.now(UTC))
            self.injected.append(fault)
            print(f"  fault at {progress:4.0%}: {kind:7} {detail}", flush=True)

    def _kill(self) -> str:
        name = self.rng.choice(self.fleet.prefork_workers())
        return f"SIGKILL pool process {self.fleet.kill_pool_process(name)} of worker {name}"

    def _crash(self) -> str:
        name = self._next_to_crash()
        old, new = self.fleet.crash_and_restart(name)
        return f"SIGKILL worker {name} (main process {old} and its pool), restarted as {new}"

    def _next_to_crash(self) -> str:
        """A worker not crashed yet in this run, those without pool processes first (a pool kill cannot
        reach their tasks), so that the first crash always hits the remote calls' threads worker."""
        crashed = {child.role.name for child in self.fleet.retired}
        candidates = [name for name in self.fleet.workers() if name not in crashed] or self.fleet.workers()
        threaded = [name for name in candidates if name not in self.fleet.prefork_workers()]
        return self.rng.choice(threaded or candidates)

    def _flush(self) -> str:
        client = redis.Redis.from_url(self.fleet.environment.redis_url)
        keys = client.dbsize()
        client.flushdb()
        detail = f"FLUSHDB dropped {keys} keys"
        return f"{detail}; {self.after_flush()}" if self.after_flush else detail

    def _restart(self) -> str:
        stopping, starting = rabbitmq.restart(down_for=BROKER_DOWN_SECONDS)
        return (
            f"RabbitMQ stop_app ({stopping:.1f} s), down {BROKER_DOWN_SECONDS:.0f} s, "
            f"start_app until it accepted connections ({starting:.1f} s)"
        )

    def _purge(self) -> str:
        """Purge the saga queue with the most messages waiting; wait for a while until one has some, so
        that the purge loses messages (a worker holds those it has prefetched: a purge leaves them)."""
        from common.queues import SAGA_GROUPS, queues_of

        vhost = self.fleet.environment.vhost
        saga_queues = queues_of(SAGA_GROUPS)
        give_up = time.monotonic() + PURGE_PATIENCE
        while True:
            ready = rabbitmq.ready_messages(vhost)
            waiting = {queue: ready.get(queue, 0) for queue in saga_queues}
            fullest = max(saga_queues, key=lambda queue: waiting[queue])
            if waiting[fullest]:
                rabbitmq.purge(vhost, fullest)
                return f"purge_queue {fullest} with {waiting[fullest]} messages waiting"
            if time.monotonic() > give_up:
                raise RuntimeError(f"no saga queue held a waiting message for {PURGE_PATIENCE:.0f} s")
            time.sleep(0.05)

    def _cut(self) -> str:
        """Celery's Django fixup closes a worker's connection after each task, so the workers hold
        connections only while tasks run: try for a while until the cut hits at least one."""
        db_name = self.fleet.environment.db_name
        give_up = time.monotonic() + CUT_PATIENCE
        with psycopg.connect(self.fleet.environment.database_url("chaos-faults"), autocommit=True) as connection:
            while True:
                cut = terminate_backends(connection, db_name=db_name, application_name=WORKER_APP_NAME)
                if cut:
                    return f"pg_terminate_backend on {cut} worker connections"
                if time.monotonic() > give_up:
                    raise RuntimeError(f"no worker held a database connection for {CUT_PATIENCE:.0f} s")
                time.sleep(0.02)


def terminate_backends(connection: psycopg.Connection, *, db_name: str, application_name: str) -> int:
    """pg_terminate_backend on the connections named `application_name` to the database `db_name`, and
    no others: every chaos run's workers share the name, so the database tells this run's apart.
    Returns how many were terminated."""
    rows = connection.execute(CUT_QUERY, {"application_name": application_name, "db_name": db_name})
    return sum(1 for (done,) in rows if done)


def popular_list_reader(*, api_url: str, token: str) -> Callable[[], str]:
    """A customer reading the popular list: right after a flush, the API finds the rank's days lost and
    rebuilds them from PostgreSQL, while the load's orders are counted. Anything but a 200 fails the fault."""

    def read() -> str:
        response = requests.get(
            f"{api_url}/api/v1/products/ranks", headers={"Authorization": f"Token {token}"}, timeout=30
        )
        if response.status_code != 200:
            raise RuntimeError(f"the popular list answered {response.status_code}: {response.text[:200]}")
        return f"the popular list read again ({len(response.json())} products)"

    return read
