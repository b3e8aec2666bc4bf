"""A task delivered twice changes nothing the second time (docs/design.md §5.6): every event of a finished
saga is delivered again to every one of its listeners, through the broker, and nothing moves."""

import random

import pytest

from apps.orders.consistency import violations
from apps.orders.events import OrderCreated, OrderFailed, OrderPaymentWaited
from tests.participants import deliver_again, listeners_of
from tests.saga.conftest import event_counts, settled, side_effects
from tests.saga_worker import wait_until_idle

pytestmark = pytest.mark.django_db(transaction=True)

DECISIONS = ("OrderPaymentWaited", "OrderFailed", "OrderCompleted", "OrderCompleteFailed")


@pytest.fixture
def coupon_order(make_user, make_product, give_coupon, place_order):
    def place() -> int:
        user = make_user(balance=100_000)
        product = make_product(price=10_000, stock=5)
        user_coupon = give_coupon(user, rate="0.1")
        return place_order(user, [(product.pk, 2)], user_coupon.pk)

    return place


def test_a_completed_saga_delivered_again_changes_nothing(
    saga_worker, coupon_order, published_events, published_envelopes
):
    order_id = coupon_order()
    settled(order_id, "COMPLETED")
    before, decisions_before = side_effects(), event_counts(published_events)
    envelopes = list(published_envelopes)
    random.Random(7).shuffle(envelopes)  # in any order

    assert deliver_again(envelopes) >= 10
    wait_until_idle()

    assert side_effects() == before
    decisions_after = event_counts(published_events)
    assert all(decisions_after[name] == decisions_before[name] for name in DECISIONS)
    assert violations(published_events) == []


def test_a_failed_saga_delivered_again_refunds_nothing_twice(
    saga_worker, settings, coupon_order, published_events, published_envelopes
):
    settings.PAYMENT_DECLINE_RATE = 1.0
    order_id = coupon_order()
    settled(order_id, "FAILED")
    before = side_effects()
    counts_before = event_counts(published_events)

    deliver_again(list(published_envelopes))
    wait_until_idle()

    assert side_effects() == before
    counts = event_counts(published_events)
    for name in (*DECISIONS, "BalanceRefunded", "CouponRestored", "StockRestored"):
        assert counts[name] == counts_before[name], name
    assert violations(published_events) == []


@pytest.mark.parametrize("event_type", [OrderCreated, OrderPaymentWaited])
def test_a_step_or_payment_request_delivered_twice_takes_effect_once(
    saga_worker, coupon_order, published_events, published_envelopes, event_type
):
    order_id = coupon_order()
    settled(order_id, "COMPLETED")
    before = side_effects()

    assert deliver_again(list(published_envelopes), (event_type,)) >= 1
    wait_until_idle()

    assert side_effects() == before
    assert event_counts(published_events)["OrderCompleted"] == 1


def test_order_failed_delivered_twice_compensates_once(
    saga_worker, make_user, make_product, give_coupon, place_order, published_events, published_envelopes
):
    user = make_user(balance=100_000)
    product = make_product(price=10_000, stock=1)
    user_coupon = give_coupon(user, rate="0.1")
    order_id = place_order(user, [(product.pk, 2)], user_coupon.pk)  # stock fails; balance and coupon undone
    settled(order_id, "FAILED")
    before = side_effects()

    # every listener of OrderFailed gets it again, even those of participants the order does not concern
    assert deliver_again(list(published_envelopes), (OrderFailed,)) == len(listeners_of(OrderFailed))
    wait_until_idle()

    assert side_effects() == before
    counts = event_counts(published_events)
    assert (counts["BalanceRefunded"], counts["CouponRestored"]) == (1, 1)
    assert violations(published_events) == []
