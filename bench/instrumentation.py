"""Counters for the benchmark, installed by the bench app (config.settings.bench) in every process.

- SQL statements: an execute wrapper on every database connection counts the statements of the current
  request or task (per thread, so gunicorn's threads and Celery's prefork processes each count their own).
- Celery tasks: task_prerun starts a count, task_postrun adds one task (by name) and its statements.
- Requests: a middleware adds one request and its statements.

Each request or task flushes its counts in ONE Redis round trip (a pipeline of HINCRBY on `bench:counts`).
The saga itself never sends HINCRBY, so the benchmark subtracts exactly these from Redis's command
statistics when it counts the saga's Redis commands.
"""

import threading
from collections.abc import Callable

from celery.signals import task_postrun, task_prerun
from django.db.backends.signals import connection_created

from common.redis import redis_client

COUNTS_KEY = "bench:counts"
_current = threading.local()


def _queries() -> int:
    return getattr(_current, "queries", 0)


def _count_query(execute: Callable, sql: str, params, many: bool, context: dict):
    _current.queries = _queries() + 1
    return execute(sql, params, many, context)


def _on_connection_created(sender, connection, **kwargs) -> None:
    if _count_query not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count_query)


def _flush(counts: dict[str, int]) -> None:
    # The process's shared client: a client of its own, made lazily, raced between gunicorn's threads at
    # the first requests, and the losing client closed its pool under a pipeline still using it.
    pipeline = redis_client().pipeline(transaction=False)
    for field, amount in counts.items():
        pipeline.hincrby(COUNTS_KEY, field, amount)
    pipeline.execute()


def _task_started(**kwargs) -> None:
    _current.queries = 0


def _task_finished(task=None, **kwargs) -> None:
    name = getattr(task, "name", "?")
    _flush({"tasks": 1, f"task:{name}": 1, "sql:worker": _queries()})
    _current.queries = 0


class QueryCountingMiddleware:
    """Counts each request and its SQL statements (the authentication's included)."""

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response

    def __call__(self, request):
        _current.queries = 0
        response = self.get_response(request)
        _flush({"requests": 1, f"requests:{request.method}": 1, "sql:api": _queries()})
        _current.queries = 0
        return response


def install() -> None:
    connection_created.connect(_on_connection_created, dispatch_uid="bench.count_queries")
    task_prerun.connect(_task_started, dispatch_uid="bench.task_started", weak=False)
    task_postrun.connect(_task_finished, dispatch_uid="bench.task_finished", weak=False)
