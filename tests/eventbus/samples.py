"""Sample events for the event bus tests: every event class of the project, and values for them."""

import dataclasses
import itertools
import types
import typing
from datetime import UTC, datetime
from importlib import import_module
from importlib.util import find_spec

from django.apps import apps

from apps.orders.events import OrderCreated, OrderLine
from eventbus import DomainEvent


def an_order_created() -> OrderCreated:
    """The OrderCreated of docs/design.md §3's example envelope."""
    return OrderCreated(
        order_id=42,
        user_id=7,
        user_coupon_id=None,
        items=(OrderLine(product_id=3, quantity=2, unit_price=10_000),),
        total_price=20_000,
        discount_price=0,
    )


def project_event_classes() -> list[type[DomainEvent]]:
    """Every DomainEvent subclass defined in an app's `events` module."""
    for app_config in apps.get_app_configs():
        if app_config.name.startswith("apps.") and find_spec(f"{app_config.name}.events"):
            import_module(f"{app_config.name}.events")
    found, pending = [], list(DomainEvent.__subclasses__())
    while pending:
        event_class = pending.pop()
        found.append(event_class)
        pending.extend(event_class.__subclasses__())
    return sorted((c for c in found if c.__module__.startswith("apps.")), key=lambda c: c.__name__)


EVENT_CLASSES = project_event_classes()
_numbers = itertools.count(101)


def sample(hint, *, optional_as_none: bool):
    """A value of the type `hint`, distinct from the others; None for optionals when asked."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if optional_as_none and type(None) in typing.get_args(hint):
            return None
        [inner] = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return sample(inner, optional_as_none=optional_as_none)
    if origin is tuple:
        item_hint = typing.get_args(hint)[0]
        return tuple(sample(item_hint, optional_as_none=optional_as_none) for _ in range(2))
    if dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        return hint(
            **{f.name: sample(hints[f.name], optional_as_none=optional_as_none) for f in dataclasses.fields(hint)}
        )
    if hint is int:
        return next(_numbers)
    if hint is str:
        return f"text {next(_numbers)} — ünïcode"
    if hint is datetime:
        return datetime(2026, 11, 21, 12, 0, next(_numbers) % 60, 123_456, tzinfo=UTC)
    raise AssertionError(f"no sample for {hint!r}: teach this test the new field type")


def sample_event(event_class: type[DomainEvent], *, optional_as_none: bool = False) -> DomainEvent:
    hints = typing.get_type_hints(event_class)
    return event_class(
        **{f.name: sample(hints[f.name], optional_as_none=optional_as_none) for f in dataclasses.fields(event_class)}
    )
