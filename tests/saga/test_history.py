"""The event history (docs/design.md §7; GET /api/v1/orders/{id}/history): every event of an order's saga,
appended in its publisher's transaction, oldest first, each naming the saga (correlation_id) and the event
whose listener published it (causation_id), on every path it travelled."""

from datetime import timedelta

import pytest
from django.utils import timezone

from eventbus.models import EventRecord, OutboxMessage
from eventbus.relay import event_history_purge
from tests.saga.conftest import settled

pytestmark = pytest.mark.django_db(transaction=True)

PRICE = 10_000


def history(client, order_id: int) -> list[dict]:
    response = client.get(f"/api/v1/orders/{order_id}/history")
    assert response.status_code == 200, response.json()
    return response.json()


def by_type(events: list[dict]) -> dict[str, dict]:
    return {event["event_type"]: event for event in events}


def test_a_completed_orders_history_tells_its_saga_each_event_naming_its_cause(
    saga_worker, make_user, make_product, place_order, client_for
):
    # given an order that went through its whole saga on a real worker
    order_id = place_order(make_user(balance=PRICE), [(make_product(price=PRICE, stock=5).pk, 1)])
    settled(order_id, "COMPLETED")

    # when staff read its history
    events = history(client_for(make_user(staff=True)), order_id)

    # then it is the saga, oldest first, every event of it correlated to the order
    types = [event["event_type"] for event in events]
    assert types[0] == "OrderCreated" and types[-1] == "OrderCompleted"
    assert {"BalanceUsed", "StockDeducted", "OrderPaymentWaited", "PaymentPaid"} <= set(types)
    assert [event["at"] for event in events] == sorted(event["at"] for event in events)
    assert {event["correlation_id"] for event in events} == {f"order-{order_id}"}
    # and each names the event whose listener published it
    event = by_type(events)
    assert event["OrderCreated"]["causation_id"] is None  # published by the API: the first
    assert event["BalanceUsed"]["causation_id"] == event["OrderCreated"]["event_id"]
    assert event["StockDeducted"]["causation_id"] == event["OrderCreated"]["event_id"]
    assert event["OrderPaymentWaited"]["causation_id"] in {
        event["BalanceUsed"]["event_id"],
        event["StockDeducted"]["event_id"],
    }  # recorded inline by the step that reported last
    assert event["PaymentPaid"]["causation_id"] == event["OrderPaymentWaited"]["event_id"]
    assert event["OrderCompleted"]["causation_id"] == event["PaymentPaid"]["event_id"]
    assert event["OrderCompleted"]["source"] == "orders" and event["PaymentPaid"]["source"] == "payments"
    # the envelopes the outbox delivers (and the relay or an operator would send again) carry the same ids
    for row in OutboxMessage.objects.filter(order_id=order_id):
        recorded = next(e for e in events if e["event_id"] == row.envelope["event_id"])
        assert (row.envelope["correlation_id"], row.envelope["causation_id"]) == (
            recorded["correlation_id"],
            recorded["causation_id"],
        )


def test_a_failed_orders_history_has_its_decision_and_its_compensations(
    saga_worker, make_user, make_product, place_order, client_for
):
    # given an order its customer cannot pay for: its stock step takes effect, then is undone
    order_id = place_order(make_user(balance=PRICE - 1), [(make_product(price=PRICE, stock=5).pk, 1)])
    settled(order_id, "FAILED")

    # when
    event = by_type(history(client_for(make_user(staff=True)), order_id))

    # then the refusal, the decision and the undo it caused are all there
    assert event["BalanceUseFailed"]["causation_id"] == event["OrderCreated"]["event_id"]
    assert event["OrderFailed"]["causation_id"] in {
        event["BalanceUseFailed"]["event_id"],
        event["StockDeducted"]["event_id"],
    }
    assert event["StockRestored"]["causation_id"] == event["OrderFailed"]["event_id"]
    assert "balance step failed" in event["OrderFailed"]["data"]["reason"]


def test_only_staff_read_an_orders_history(make_user, make_product, place_order, client_for):
    owner = make_user(balance=PRICE)
    order_id = place_order(owner, [(make_product(price=PRICE).pk, 1)])

    refused = client_for(owner).get(f"/api/v1/orders/{order_id}/history")
    missing = client_for(make_user(staff=True)).get(f"/api/v1/orders/{order_id + 1000}/history")

    assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_the_history_outlives_the_outbox_and_is_kept_its_retention(
    make_user, make_product, place_order, client_for, settings
):
    # given an order placed, whose outbox rows are gone (purged after their retention)
    order_id = place_order(make_user(balance=PRICE), [(make_product(price=PRICE).pk, 1)])
    OutboxMessage.objects.filter(order_id=order_id).delete()
    staff = client_for(make_user(staff=True))

    # then its history still has its creation
    assert [event["event_type"] for event in history(staff, order_id)] == ["OrderCreated"]

    # and once past EVENT_HISTORY_RETENTION_DAYS it is purged, and only then
    assert event_history_purge() == 0
    days = settings.EVENT_HISTORY_RETENTION_DAYS
    EventRecord.objects.filter(order_id=order_id).update(occurred_at=timezone.now() - timedelta(days=days, hours=1))
    assert event_history_purge() == 1
    assert history(staff, order_id) == []
