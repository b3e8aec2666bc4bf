"""Domain events and their wire envelope (docs/design.md §3)."""

import dataclasses
import json
from datetime import UTC, datetime
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from apps.orders.events import OrderCompleted, OrderCreated, OrderLine
from common.app_hooks import app_modules
from eventbus.events import envelope_of, event_from_envelope
from tests.eventbus.samples import EVENT_CLASSES, an_order_created, sample_event


def test_every_event_names_the_app_that_publishes_it():
    labels = {module.__name__: config.label for config, module in app_modules("events")}
    assert {"orders", "balance", "coupons", "products", "payments"} <= {c.source for c in EVENT_CLASSES}
    for event_class in EVENT_CLASSES:
        assert event_class.source == labels[event_class.__module__], event_class


@pytest.mark.parametrize("event_class", EVENT_CLASSES, ids=lambda c: c.__name__)
def test_an_event_is_a_frozen_dataclass_with_a_source(event_class):
    event = sample_event(event_class)
    assert dataclasses.is_dataclass(event_class) and event_class.source
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(event, dataclasses.fields(event_class)[0].name, None)


def test_the_envelope_has_the_shape_of_design_section_3():
    # given
    event = an_order_created()

    # when
    before = timezone.now()
    envelope = envelope_of(event)
    after = timezone.now()

    # then
    assert list(envelope) == [
        "event_id", "event_type", "occurred_at", "source", "correlation_id", "causation_id", "data"
    ]  # fmt: skip
    assert UUID(envelope["event_id"]).version == 4
    assert envelope["correlation_id"] == "order-42" and envelope["causation_id"] is None  # no listener running
    assert envelope["event_type"] == "OrderCreated"
    assert envelope["source"] == "orders"
    assert envelope["occurred_at"].endswith("Z")
    assert before <= datetime.fromisoformat(envelope["occurred_at"]) <= after
    assert envelope["data"] == {
        "order_id": 42,
        "user_id": 7,
        "user_coupon_id": None,
        "items": [{"product_id": 3, "quantity": 2, "unit_price": 10_000}],
        "total_price": 20_000,
        "discount_price": 0,
        "participants": ["balance", "stock"],
    }


def test_each_envelope_has_its_own_event_id():
    event = sample_event(OrderCreated)
    assert envelope_of(event)["event_id"] != envelope_of(event)["event_id"]


@pytest.mark.parametrize("optional_as_none", [False, True], ids=["values", "optionals None"])
@pytest.mark.parametrize("event_class", EVENT_CLASSES, ids=lambda c: c.__name__)
def test_every_event_survives_the_wire(event_class, optional_as_none):
    # given
    event = sample_event(event_class, optional_as_none=optional_as_none)

    # when it travels as JSON and is read back
    envelope = json.loads(json.dumps(envelope_of(event)))
    received = event_from_envelope(envelope)

    # then
    assert type(received) is event_class
    assert received == event
    assert envelope["event_type"] == event_class.__name__ and envelope["source"] == event_class.source


def test_nested_lines_and_datetimes_come_back_as_their_own_types():
    # given
    seoul = ZoneInfo("Asia/Seoul")
    event = OrderCompleted(
        order_id=1,
        user_id=2,
        items=(OrderLine(3, 4, 500), OrderLine(5, 1, 700)),
        gross_price=2_700,
        discount_price=0,
        total_price=2_700,
        user_coupon_id=None,
        created_at=datetime(2026, 11, 21, 21, 0, 0, 1, tzinfo=seoul),
        completed_at=datetime(2026, 11, 21, 12, 0, 5, tzinfo=UTC),
    )

    # when
    data = json.loads(json.dumps(event.to_data()))
    received = OrderCompleted.from_data(data)

    # then
    assert data["completed_at"] == "2026-11-21T12:00:05Z"
    assert data["items"] == [
        {"product_id": 3, "quantity": 4, "unit_price": 500},
        {"product_id": 5, "quantity": 1, "unit_price": 700},
    ]
    assert isinstance(received.items, tuple) and all(isinstance(line, OrderLine) for line in received.items)
    assert received.created_at == event.created_at and received.created_at.utcoffset() is not None
    assert received == event


@pytest.mark.parametrize(
    "envelope",
    [
        {"event_type": "OrderExploded", "data": {}},
        {"event_type": "DomainEvent", "data": {}},
        {"data": {"order_id": 1}},
    ],
    ids=["unknown type", "the base class", "no type"],
)
def test_an_envelope_of_an_unknown_event_type_is_refused(envelope):
    with pytest.raises(ValueError, match="unknown event type"):
        event_from_envelope(envelope)
