"""Two orders racing for one user coupon."""

from collections import Counter

import pytest

from apps.balance.models import BalanceTransaction
from apps.balance.selectors import balance_of
from apps.coupons.models import UserCoupon
from apps.orders.consistency import violations
from apps.payments.models import Payment
from apps.products.models import Stock, StockMovement
from tests.concurrency.conftest import all_decided, post_all

pytestmark = pytest.mark.django_db(transaction=True)

PRICE = 10_000
TOTAL = 9_000  # after the 10% coupon
ROUNDS = 5


def test_two_orders_with_one_coupon_use_it_at_most_once(
    saga_worker, make_user, make_product, give_coupon, client_for, published_events
):
    both_created = 0
    for _ in range(ROUNDS):
        # given: a user who can afford both orders and holds one coupon
        user = make_user(balance=2 * PRICE)
        product = make_product(price=PRICE, stock=10)
        user_coupon = give_coupon(user, rate="0.1")
        clients = [client_for(user), client_for(user)]
        body = {"items": [{"product_id": product.pk, "quantity": 1}], "user_coupon_id": user_coupon.pk}

        # when: both orders name the coupon at the same moment
        responses = post_all(clients, "/api/v1/orders", [body, body])

        # then: each is accepted or refused for the coupon, and exactly one completes with it
        created = [response.json()["id"] for response in responses if response.status_code == 201]
        refused = [response for response in responses if response.status_code != 201]
        assert all(r.status_code == 400 and r.json()["code"] == "coupon_not_usable" for r in refused), [
            r.json() for r in refused
        ]
        assert created, "the coupon was unused, so at least one order must be accepted"
        both_created += len(created) == 2
        orders = all_decided(created)
        completed = [order for order in orders if order.status == "COMPLETED"]
        failed = [order for order in orders if order.status == "FAILED"]
        assert len(completed) == 1 and len(failed) == len(created) - 1
        winner = completed[0]
        assert winner.total_price == TOTAL
        coupon = UserCoupon.objects.get(pk=user_coupon.pk)
        assert (coupon.status, coupon.used_by_order_id) == ("USED", winner.pk)
        # the loser failed at its coupon step after its other steps took effect, and both were undone once
        for order in failed:
            assert order.failure_reason == "coupon step failed: the coupon was already used"
            ledger = BalanceTransaction.objects.filter(order_id=order.pk)
            assert sorted(ledger.values_list("kind", "amount")) == [("REFUND", TOTAL), ("USE", TOTAL)]
            movements = StockMovement.objects.filter(order_id=order.pk)
            assert sorted(movements.values_list("kind", "delta")) == [("DEDUCT", -1), ("RESTORE", 1)]
            assert not Payment.objects.filter(order_id=order.pk).exists()
        assert balance_of(user_id=user.pk) == 2 * PRICE - TOTAL
        assert Stock.objects.get(product=product).quantity == 9

    events = Counter(type(event).__name__ for event in published_events)
    assert events["CouponUsed"] == ROUNDS and events["OrderCompleted"] == ROUNDS
    assert events["CouponUseFailed"] == events["OrderFailed"] == both_created
    assert violations(published_events) == []
