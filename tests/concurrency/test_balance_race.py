"""Many orders and charges racing over one user's balance."""

from collections import Counter

import pytest
from django.conf import settings

from apps.balance.errors import BalanceLimitExceeded
from apps.balance.models import BalanceTransaction, TransactionKind
from apps.balance.selectors import balance_of
from apps.balance.services import balance_charge, balance_use
from apps.coupons.models import UserCoupon
from apps.orders.consistency import violations
from apps.payments.models import Payment
from apps.products.models import Stock, StockMovement
from apps.products.services import StockLine, stock_deduct
from tests.concurrency.conftest import all_decided, orders_with_tasks_purged, post_all, race, values
from tests.saga_worker import running_worker

pytestmark = pytest.mark.django_db(transaction=True)

PRICE = 10_000


def test_ten_orders_against_a_balance_for_three_through_the_api(
    saga_worker, make_user, make_product, give_coupon, client_for, published_events
):
    # given: each order costs 9,000 after its own 10% coupon, and the balance pays for exactly 3
    product = make_product(price=PRICE, stock=100)
    user = make_user(balance=3 * 9_000)
    coupons = [give_coupon(user, rate="0.1") for _ in range(10)]
    clients = [client_for(user) for _ in coupons]
    bodies = [{"items": [{"product_id": product.pk, "quantity": 1}], "user_coupon_id": c.pk} for c in coupons]

    # when: the user places all ten at the same moment
    responses = post_all(clients, "/api/v1/orders", bodies)

    # then: exactly 3 complete; 7 fail on balance and give back their stock and coupons
    assert [response.status_code for response in responses] == [201] * 10, [r.json() for r in responses]
    orders = all_decided([response.json()["id"] for response in responses])
    completed = [order for order in orders if order.status == "COMPLETED"]
    failed = [order for order in orders if order.status == "FAILED"]
    assert (len(completed), len(failed)) == (3, 7)
    assert all(order.total_price == 9_000 for order in orders)
    assert all(order.failure_reason == "balance step failed: insufficient balance" for order in failed)
    assert balance_of(user_id=user.pk) == 0
    assert Stock.objects.get(product=product).quantity == 97
    used = dict(UserCoupon.objects.filter(status="USED").values_list("pk", "used_by_order_id"))
    assert used == {order.user_coupon_id: order.pk for order in completed}
    assert UserCoupon.objects.filter(status="UNUSED").count() == 7
    # nothing else happened: the failed orders never touched the balance and were never paid
    assert not BalanceTransaction.objects.filter(order_id__in=[order.pk for order in failed]).exists()
    assert sorted(Payment.objects.values_list("order_id", flat=True)) == [order.pk for order in completed]
    events = Counter(type(event).__name__ for event in published_events)
    assert events["BalanceUsed"] == 3 and events["BalanceUseFailed"] == 7 and events["BalanceRefunded"] == 0
    assert events["StockRestored"] == 7 and events["CouponRestored"] == 7
    assert violations(published_events) == []


def test_twenty_balance_steps_against_a_balance_for_five_take_exactly_five(make_user, make_product, published_events):
    # given: 20 orders of 10,000 by a user holding 50,000, their stock steps already done
    product = make_product(price=PRICE, stock=20)
    user = make_user(balance=5 * PRICE)
    orders = orders_with_tasks_purged(user_id=user.pk, product_id=product.pk, count=20)
    for order in orders:
        assert stock_deduct(order_id=order.pk, lines=[StockLine(product_id=product.pk, quantity=1)]).succeeded

    # when: their balance steps run at the same moment
    outcomes = values(
        race(len(orders), lambda i: balance_use(order_id=orders[i].pk, user_id=user.pk, amount=orders[i].total_price))
    )

    # then: exactly 5 are paid from the balance, which ends at 0 and agrees with its ledger
    assert Counter(outcome.succeeded for outcome in outcomes) == {True: 5, False: 15}
    assert {outcome.reason for outcome in outcomes if not outcome.succeeded} == {"insufficient balance"}
    assert balance_of(user_id=user.pk) == 0
    winners = {order.pk for order, outcome in zip(orders, outcomes, strict=True) if outcome.succeeded}
    uses = BalanceTransaction.objects.filter(kind=TransactionKind.USE)
    assert sorted(uses.values_list("order_id", "amount")) == sorted((pk, PRICE) for pk in winners)
    assert sorted(uses.values_list("balance_after", flat=True)) == [0, PRICE, 2 * PRICE, 3 * PRICE, 4 * PRICE]

    # and when the saga carries on with a worker, the five complete and the others give their stock back
    with running_worker(purge=False):
        finished = all_decided([order.pk for order in orders])
    assert {order.pk for order in finished if order.status == "COMPLETED"} == winners
    assert Counter(order.status for order in finished) == {"COMPLETED": 5, "FAILED": 15}
    assert Stock.objects.get(product=product).quantity == 15
    assert StockMovement.objects.filter(kind="RESTORE").count() == 15
    assert violations(published_events) == []


def test_concurrent_charges_stop_exactly_at_the_limit(make_user, published_events):
    # given: an empty balance and 20 charges of 1,000,000 against the 10,000,000 limit
    user = make_user()
    assert settings.BALANCE_LIMIT == 10_000_000

    # when: all charges arrive at the same moment
    outcomes = race(20, lambda i: balance_charge(user_id=user.pk, amount=1_000_000))

    # then: exactly 10 succeed, the others are refused, and the balance sits at the limit
    charged = [outcome.value for outcome in outcomes if outcome.error is None]
    refused = [outcome.error for outcome in outcomes if outcome.error is not None]
    assert len(charged) == 10 and len(refused) == 10
    assert all(isinstance(error, BalanceLimitExceeded) for error in refused), refused
    assert sorted(charged) == [n * 1_000_000 for n in range(1, 11)]
    assert balance_of(user_id=user.pk) == 10_000_000
    assert BalanceTransaction.objects.filter(user=user, kind=TransactionKind.CHARGE).count() == 10
    assert violations(published_events) == []
