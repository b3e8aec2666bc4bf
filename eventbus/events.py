"""Domain events and their wire envelope (docs/design.md §3)."""

import dataclasses
import functools
import types
import typing
import uuid
from datetime import datetime
from typing import Any, ClassVar

from django.utils import timezone

from eventbus.causation import cause_of

_EVENT_TYPES: dict[str, type["DomainEvent"]] = {}


@dataclasses.dataclass(frozen=True)
class DomainEvent:
    """Base of every event: a frozen dataclass named in the past tense, carrying ids and values only.

    Subclasses set `source`, the app that publishes them."""

    source: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _EVENT_TYPES[cls.__name__] = cls

    @classmethod
    def event_type(cls) -> str:
        return cls.__name__

    def to_data(self) -> dict[str, Any]:
        return _to_json(dataclasses.asdict(self))

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> "DomainEvent":
        hints = _type_hints(cls)
        values = {f.name: _from_json(hints[f.name], data[f.name]) for f in dataclasses.fields(cls) if f.name in data}
        return cls(**values)


def correlation_id_of(order_id: Any) -> str | None:
    """What every event of one order's saga shares."""
    return None if order_id is None else f"order-{order_id}"


def envelope_of(event: DomainEvent) -> dict[str, Any]:
    order_id = getattr(event, "order_id", None)
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event.event_type(),
        "occurred_at": timezone.now().isoformat().replace("+00:00", "Z"),
        "source": event.source,
        "correlation_id": correlation_id_of(order_id),
        "causation_id": cause_of(order_id),
        "data": event.to_data(),
    }


def event_from_envelope(envelope: dict[str, Any]) -> DomainEvent:
    try:
        event_class = _EVENT_TYPES[envelope["event_type"]]
    except KeyError:
        raise ValueError(f"unknown event type {envelope.get('event_type')!r}") from None
    return event_class.from_data(envelope["data"])


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """A class's resolved type hints, worked out once (typing.get_type_hints re-evaluates them each call)."""
    return typing.get_type_hints(cls)


def _to_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def _from_json(hint: Any, value: Any) -> Any:
    """Rebuild nested dataclasses, tuples and datetimes from their JSON form, following the type hints."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _from_json(inner[0], value) if len(inner) == 1 else value
    if origin is tuple:
        item_hint = typing.get_args(hint)[0]
        return tuple(_from_json(item_hint, item) for item in value)
    if dataclasses.is_dataclass(hint):
        item_hints = _type_hints(hint)
        return hint(**{key: _from_json(item_hints[key], item) for key, item in value.items()})
    if hint is datetime:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value
