"""Many orders racing for the last units of one product."""

from collections import Counter

import pytest

from apps.balance.models import BalanceTransaction, TransactionKind
from apps.balance.selectors import balance_of
from apps.balance.services import balance_use
from apps.orders.consistency import violations
from apps.orders.models import Order
from apps.payments.models import Payment
from apps.products.models import MovementKind, Stock, StockMovement, StockStep
from apps.products.services import StockLine, stock_deduct
from common.steps import StepState
from tests.concurrency.conftest import all_decided, orders_with_tasks_purged, post_all, race, values
from tests.saga_worker import running_worker

pytestmark = pytest.mark.django_db(transaction=True)

PRICE = 10_000


def test_twenty_buyers_for_five_units_through_the_api(
    saga_worker, make_user, make_product, client_for, published_events
):
    # given: 5 units, 20 buyers who can each afford one
    product = make_product(price=PRICE, stock=5)
    users = [make_user(balance=PRICE) for _ in range(20)]
    clients = [client_for(user) for user in users]
    body = {"items": [{"product_id": product.pk, "quantity": 1}], "user_coupon_id": None}

    # when: all of them order at the same moment
    responses = post_all(clients, "/api/v1/orders", [body] * len(users))

    # then: every order is accepted, exactly 5 complete and 15 fail on stock
    assert [response.status_code for response in responses] == [201] * 20, [r.json() for r in responses]
    orders = all_decided([response.json()["id"] for response in responses])
    completed = [order for order in orders if order.status == "COMPLETED"]
    failed = [order for order in orders if order.status == "FAILED"]
    assert (len(completed), len(failed)) == (5, 15)
    assert all(
        order.failure_reason == f"stock step failed: insufficient stock for product {product.pk}" for order in failed
    )
    assert Stock.objects.get(product=product).quantity == 0
    # the failed orders took no stock, and each got back the balance it used, exactly once
    assert not StockMovement.objects.filter(order_id__in=[o.pk for o in failed]).exists()
    for order in failed:
        ledger = sorted(BalanceTransaction.objects.filter(order_id=order.pk).values_list("kind", "amount"))
        assert ledger == [(TransactionKind.REFUND, PRICE), (TransactionKind.USE, PRICE)]
        assert balance_of(user_id=order.user_id) == PRICE
    assert all(balance_of(user_id=order.user_id) == 0 for order in completed)
    # nothing else happened: no payment for a failed order, no stock to restore
    assert sorted(Payment.objects.values_list("order_id", flat=True)) == [order.pk for order in completed]
    events = Counter(type(event).__name__ for event in published_events)
    assert events["StockDeducted"] == 5 and events["StockDeductFailed"] == 15
    assert events["BalanceRefunded"] == 15 and events["StockRestored"] == 0
    assert violations(published_events) == []


def test_twenty_stock_steps_for_five_units_take_exactly_five(make_user, make_product, published_events):
    # given: 20 orders for one unit each of a product with 5, their balance steps already done
    product = make_product(price=PRICE, stock=5)
    user = make_user(balance=20 * PRICE)
    orders = orders_with_tasks_purged(user_id=user.pk, product_id=product.pk, count=20)
    for order in orders:
        assert balance_use(order_id=order.pk, user_id=user.pk, amount=order.total_price).succeeded

    # when: their stock steps run at the same moment
    outcomes = values(
        race(
            len(orders),
            lambda i: stock_deduct(order_id=orders[i].pk, lines=[StockLine(product_id=product.pk, quantity=1)]),
        )
    )

    # then: exactly 5 take a unit, the stock is 0 and its ledger agrees
    assert Counter(outcome.succeeded for outcome in outcomes) == {True: 5, False: 15}
    assert {outcome.reason for outcome in outcomes if not outcome.succeeded} == {
        f"insufficient stock for product {product.pk}"
    }
    assert Stock.objects.get(product=product).quantity == 0
    deducted = StockMovement.objects.filter(product=product, kind=MovementKind.DEDUCT)
    assert sorted(deducted.values_list("order_id", "delta")) == sorted(
        (order.pk, -1) for order, outcome in zip(orders, outcomes, strict=True) if outcome.succeeded
    )
    assert Counter(StockStep.objects.values_list("state", flat=True)) == {
        StepState.APPLIED: 5,
        StepState.REJECTED: 15,
    }

    # and when the saga carries on with a worker, the five complete and the rest are refunded
    with running_worker(purge=False):
        finished = all_decided([order.pk for order in orders])
    assert Counter(order.status for order in finished) == {"COMPLETED": 5, "FAILED": 15}
    winners = {order.pk for order, outcome in zip(orders, outcomes, strict=True) if outcome.succeeded}
    assert {order.pk for order in finished if order.status == "COMPLETED"} == winners
    assert balance_of(user_id=user.pk) == 15 * PRICE
    assert Stock.objects.get(product=product).quantity == 0
    assert Order.objects.filter(status="COMPLETED").count() == 5
    assert violations(published_events) == []
