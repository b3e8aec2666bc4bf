"""Sample events for the event bus tests: every event class of the project, and values for them."""

import dataclasses
import itertools
import types
import typing
from datetime import UTC, datetime

from apps.orders.events import OrderCreated, OrderLine
from common.app_hooks import app_modules
from common.participants import participants, step_names
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
        participants=("balance", "stock"),
    )


def project_event_classes() -> list[type[DomainEvent]]:
    """Every DomainEvent subclass defined in an installed app's `events` module."""
    modules = {module.__name__ for _, module in app_modules("events")}
    found, pending = [], list(DomainEvent.__subclasses__())
    while pending:
        event_class = pending.pop()
        found.append(event_class)
        pending.extend(event_class.__subclasses__())
    return sorted((c for c in found if c.__module__ in modules), key=lambda c: c.__name__)


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
    """An event with every field set; an order event's participants are every participant, or with
    `optional_as_none` only those that concern every order (as for an order without a coupon)."""
    hints = typing.get_type_hints(event_class)
    values = {f.name: sample(hints[f.name], optional_as_none=optional_as_none) for f in dataclasses.fields(event_class)}
    if "participants" in values:
        every_order = tuple(each.step for each in participants() if each.applies is None)
        values["participants"] = every_order if optional_as_none else step_names()
    return event_class(**values)
