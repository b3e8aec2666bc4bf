"""A real Celery worker for whole-saga tests, and a way to wait until it has nothing left to do."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from celery.contrib.testing.worker import start_worker
from celery.worker import state as worker_state
from django.db import connections

from common.queues import SAGA_GROUPS, queues_of
from config.celery import app
from eventbus.queue_depth import waiting_messages


def queued_messages() -> int:
    """The messages waiting in the saga's queues, on either broker."""
    depths = waiting_messages(queues_of(SAGA_GROUPS))
    assert None not in depths.values(), f"the broker's queues cannot be read: {depths}"
    return sum(depths.values())


def purge_queues() -> None:
    """Empty every queue, on a connection of its own: a pooled one may be stale (RabbitMQ restarted)."""
    with app.connection_for_write() as connection:
        app.control.purge(connection=connection)


@contextmanager
def running_worker(concurrency: int = 4, purge: bool = True) -> Iterator[object]:
    """Start a worker; `purge=False` keeps tasks queued before it started (they run as it starts)."""
    if purge:
        purge_queues()
    with start_worker(
        app, pool="threads", concurrency=concurrency, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30
    ) as worker:
        _wake_often(worker)
        yield worker
        wait_until_idle()
    connections.close_all()


def _wake_often(worker) -> None:
    """A timer on the worker's event loop, so that it sees the test's stop at once: RabbitMQ's transport
    sets none of its own, and the loop would sleep until its next one (seconds) before stopping."""
    hub = getattr(worker, "hub", None)
    if hub is not None:
        hub.call_repeatedly(0.2, lambda: None)


def wait_until_idle(timeout: float = 30.0, quiet_for: float = 0.3) -> None:
    """Until no task is queued, running or waiting for its retry, for `quiet_for` seconds in a row."""
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        busy = queued_messages() or worker_state.active_requests or worker_state.reserved_requests
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_for:
            return
        time.sleep(0.05)
    raise AssertionError("the worker did not become idle in time")


def wait_for(predicate: Callable[[], object], timeout: float = 20.0, message: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {message}")
