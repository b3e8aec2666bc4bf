"""A real Celery worker for whole-saga tests, and a way to wait until it has nothing left to do."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from celery.contrib.testing.worker import start_worker
from celery.worker import state as worker_state
from django.db import connections

from common.queues import SAGA_GROUPS, queues_of
from common.redis import redis_client
from config.celery import app


def queued_messages() -> int:
    client = redis_client()
    return sum(client.llen(queue) for queue in queues_of(SAGA_GROUPS))


@contextmanager
def running_worker(concurrency: int = 4, purge: bool = True) -> Iterator[object]:
    """Start a worker; `purge=False` keeps tasks queued before it started (they run as it starts)."""
    if purge:
        app.control.purge()
    with start_worker(
        app, pool="threads", concurrency=concurrency, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30
    ) as worker:
        yield worker
        wait_until_idle()
    connections.close_all()


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
