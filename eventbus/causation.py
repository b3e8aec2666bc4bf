"""Which events a listener is handling, so that the events it publishes name their cause
(docs/design.md §3: `causation_id`, the `event_id` of the event whose listener published this one).

A listener's run sets the events it handles (eventbus.listeners); a batched listener handles several
orders' events at once, so each order's new events name that order's event. An inline listener run inside
another listener's task sets its own, for as long as it runs. Outside any listener (the API, the recovery
sweep, an operator) an event has no cause.
"""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_handling: ContextVar[dict[Any, str] | None] = ContextVar("eventbus_handling", default=None)


@contextmanager
def handling(envelopes: Iterable[dict[str, Any]]) -> Iterator[None]:
    causes: dict[Any, str] = {}
    for envelope in envelopes:
        causes.setdefault(envelope.get("data", {}).get("order_id"), envelope["event_id"])
    token = _handling.set(causes)
    try:
        yield
    finally:
        _handling.reset(token)


def cause_of(order_id: Any) -> str | None:
    """The event id of the handled event of the same order, if a listener is running."""
    causes = _handling.get()
    return causes.get(order_id) if causes else None
