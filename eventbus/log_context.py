"""The ids an event puts on the log lines written while its listener handles it (common/logs.py).

A listener's run binds its envelope's `event_id`, `event_type`, `correlation_id` and `order_id` to the
logging context (structlog.contextvars: per thread, so the threads pool's tasks never share them) and
restores what was bound before when it ends, however it ends: an inline listener run inside another
listener's task gets its own ids and gives the outer ones back. A batch that handles several orders at
once has no place where one order's part runs apart from the others, so it binds the lists
`event_ids`, `correlation_ids` and `order_ids` instead, and hides the single ids and the `request_id`
bound for the event the worker took from the broker: they name one order of the batch, not all of them.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import structlog

SINGLE_IDS = ("event_id", "event_type", "correlation_id", "order_id")
# Bound for the request that sent the task that runs the batch, not for the other orders in it.
REQUEST_IDS = ("request_id",)


def log_ids(envelope: dict[str, Any]) -> dict[str, Any]:
    """The ids of one envelope, as log fields (those it has)."""
    ids = {
        "event_id": envelope.get("event_id"),
        "event_type": envelope.get("event_type"),
        "correlation_id": envelope.get("correlation_id"),
        "order_id": (envelope.get("data") or {}).get("order_id"),
    }
    return {key: value for key, value in ids.items() if value is not None}


def batch_log_ids(envelopes: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    each = [log_ids(envelope) for envelope in envelopes]
    return {
        "event_ids": [ids.get("event_id") for ids in each],
        "correlation_ids": [ids.get("correlation_id") for ids in each],
        "order_ids": [ids.get("order_id") for ids in each],
    }


@contextmanager
def handling_logged(envelopes: Sequence[dict[str, Any]]) -> Iterator[None]:
    """Bind the ids of the envelopes a listener's run handles, for as long as it runs."""
    if len(envelopes) <= 1:
        with structlog.contextvars.bound_contextvars(**(log_ids(envelopes[0]) if envelopes else {})):
            yield
        return
    hidden = (*SINGLE_IDS, *REQUEST_IDS)
    before = structlog.contextvars.get_contextvars()
    structlog.contextvars.unbind_contextvars(*hidden)
    try:
        with structlog.contextvars.bound_contextvars(**batch_log_ids(envelopes)):
            yield
    finally:
        structlog.contextvars.bind_contextvars(**{key: before[key] for key in hidden if key in before})


def task_log_ids(args: tuple | list, kwargs: dict | None) -> dict[str, Any]:
    """The ids of the envelope a listener's task was sent with (its first argument), if it was one."""
    envelope = args[0] if args else (kwargs or {}).get("envelope")
    return log_ids(envelope) if isinstance(envelope, dict) and "event_id" in envelope else {}
