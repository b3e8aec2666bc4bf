"""A cancel racing the saga, and itself: the database fence lets exactly one of them move the order, and
whatever wins, every order ends FAILED or CANCELED with everything given back (docs/design.md §5)."""

import random
import time
from collections import Counter

import pytest

from apps.balance.selectors import balance_of
from apps.coupons.models import UserCoupon
from apps.orders.consistency import violations
from apps.orders.events import OrderCanceled, OrderFailed, OrderPaymentWaited
from apps.orders.models import Order
from apps.orders.services import order_cancel, order_complete
from apps.payments.models import Payment
from apps.payments.services import payment_pay
from apps.products.models import Stock
from tests.concurrency.conftest import PRICE, all_decided, deliver, post_all, purge_tasks, race, values
from tests.saga.conftest import settled
from tests.saga_worker import running_worker

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 12
RACERS = 10


def events_of(published_events, order_id: int, *types: type) -> list[str]:
    return [type(e).__name__ for e in published_events if isinstance(e, types) and e.order_id == order_id]


def assert_everything_given_back(orders: list[Order], published_events) -> None:
    """Every order ended without keeping anything: its user's money, the stock and the coupons are back."""
    users = {order.user_id for order in orders}
    assert all(balance_of(user_id=user_id) == len(orders) * PRICE for user_id in users)
    product_ids = {item.product_id for order in orders for item in order.items.all()}
    assert all(Stock.objects.get(product_id=pk).quantity == len(orders) for pk in product_ids)
    assert not UserCoupon.objects.filter(status="USED").exists()
    assert violations(published_events) == []


def test_a_cancel_racing_the_decision_fails_the_order_once(orders_with_steps_done, published_events):
    # given: orders whose three steps all succeeded, their results not delivered yet
    orders = orders_with_steps_done(ROUNDS, stock=ROUNDS)
    rng = random.Random(11)

    for order, steps in orders:
        delay = rng.uniform(0, 0.01)  # the cancel lands before, during or after the decision

        def racer(index: int, order=order, steps=steps, delay=delay):
            if index == 0:
                return [deliver(order.pk, step, outcome) for step, outcome in steps.items()]
            time.sleep(delay)
            return order_cancel(order_id=order.pk)

        # when: the last results and the customer's cancel arrive together
        decided, cancelled = values(race(2, racer))

        # then: the cancel always wins over an order that is not completed, and fails it exactly once;
        # the steps decided payment only if they came first
        assert cancelled == "FAILED"
        order.refresh_from_db()
        assert (order.status, order.failure_reason) == ("FAILED", "canceled by the customer")
        assert events_of(published_events, order.pk, OrderFailed) == ["OrderFailed"]
        waited = events_of(published_events, order.pk, OrderPaymentWaited)
        assert waited == (["OrderPaymentWaited"] if "OrderPaymentWaited" in decided else [])

    # and the saga compensates every one of them (a payment made for a cancelled order is cancelled)
    with running_worker(purge=False):
        finished = all_decided([order.pk for order, _ in orders])
    assert Counter(order.status for order in finished) == {"FAILED": ROUNDS}
    assert not Payment.objects.filter(status="COMPLETED").exists()
    assert_everything_given_back(finished, published_events)


def test_a_cancel_racing_the_payment_ends_failed_or_canceled_never_completed(
    orders_with_steps_done, published_events, settings
):
    # given: orders waiting for their payment, and a gateway that approves
    settings.PAYMENT_DECLINE_RATE = 0
    orders = orders_with_steps_done(ROUNDS, stock=ROUNDS)
    for order, steps in orders:
        for step, outcome in steps.items():
            deliver(order.pk, step, outcome)
    purge_tasks()  # the test pays itself
    rng = random.Random(5)
    outcomes = Counter()

    for order, _ in orders:
        delay = rng.uniform(0, 0.02)

        def racer(index: int, order=order, delay=delay):
            if index == 0:  # what pay_task does, then complete_order_task on PaymentPaid
                payment_pay(order_id=order.pk, user_id=order.user_id, amount=order.total_price)
                return order_complete(order_id=order.pk)
            time.sleep(delay)
            return order_cancel(order_id=order.pk)

        # when: the payment (and the completion it leads to) and the cancel run at the same moment
        _, cancelled = values(race(2, racer))
        outcomes[cancelled] += 1

    # then: each cancel either failed the order before completion or cancelled it after, and the saga
    # gives back everything in both cases, the payment included
    with running_worker(purge=False):
        finished = all_decided([order.pk for order, _ in orders])
    assert Counter(order.status for order in finished) == outcomes
    assert set(outcomes) <= {"FAILED", "CANCELED"}
    assert Counter(Payment.objects.values_list("status", flat=True)) == {"CANCELED": ROUNDS}
    for order in finished:
        assert len(events_of(published_events, order.pk, OrderFailed, OrderCanceled)) == 1
    assert_everything_given_back(finished, published_events)


@pytest.mark.parametrize("when", ["completed", "created"])
def test_many_cancels_of_one_order_at_once_cancel_it_once(
    when, make_user, make_product, give_coupon, client_for, place_order, published_events
):
    # given: an order with a coupon, completed (or still undecided: no worker has run its steps yet)
    user = make_user(balance=PRICE)
    product = make_product(price=PRICE, stock=1)
    user_coupon = give_coupon(user, rate="0.1")
    if when == "completed":
        with running_worker(purge=False):
            order_id = place_order(user, [(product.pk, 1)], user_coupon.pk)
            settled(order_id, "COMPLETED")
    else:
        order_id = place_order(user, [(product.pk, 1)], user_coupon.pk)

    # when: the customer's app sends the cancel many times at once (no Idempotency-Key)
    clients = [client_for(user) for _ in range(RACERS)]
    responses = post_all(clients, f"/api/v1/orders/{order_id}/cancel", [{}] * RACERS)

    # then: one cancel went through, the others were told the order is no longer cancelable
    assert Counter(response.status_code for response in responses) == {202: 1, 409: RACERS - 1}
    refusals = {response.json()["code"] for response in responses if response.status_code == 409}
    assert refusals == {"order_not_cancelable"}
    with running_worker(purge=False):
        [order] = all_decided([order_id])
    assert order.status == ("CANCELED" if when == "completed" else "FAILED")
    assert len(events_of(published_events, order_id, OrderFailed, OrderCanceled)) == 1
    # and everything was given back once
    assert balance_of(user_id=user.pk) == PRICE
    assert Stock.objects.get(product=product).quantity == 1
    assert UserCoupon.objects.get(pk=user_coupon.pk).status == "UNUSED"
    assert violations(published_events) == []
