"""Every way an order fails, through the API with a real worker, and its compensation to the unit and won."""

import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from apps.balance.models import BalanceTransaction
from apps.balance.selectors import balance_of
from apps.dataplatform.models import Delivery
from apps.orders.consistency import violations
from apps.orders.models import Order
from apps.orders.services import OrderLineInput, order_create, orders_recover
from apps.payments.models import Payment
from apps.products.models import Stock, StockMovement
from apps.products.rank import rank_top
from tests.participants import all_steps
from tests.saga.conftest import event_counts, finished, settled
from tests.saga_worker import running_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def assert_nothing_left(user, balance, product, stock, user_coupon=None):
    """The user's money, the product's stock and the coupon are as before the order; nothing sold."""
    assert balance_of(user_id=user.pk) == balance
    assert Stock.objects.get(product=product).quantity == stock
    if user_coupon is not None:
        user_coupon.refresh_from_db()
        assert (user_coupon.status, user_coupon.used_by_order_id) == ("UNUSED", None)
    assert rank_top() == []
    assert not Delivery.objects.exists()


def test_stock_step_fails_and_the_balance_and_coupon_are_given_back(
    saga_worker, make_user, make_product, give_coupon, place_order, published_events
):
    user = make_user(balance=50_000)
    product = make_product(price=10_000, stock=2)
    user_coupon = give_coupon(user, rate="0.5")

    order_id = place_order(user, [(product.pk, 3)], user_coupon.pk)

    order = settled(order_id, "FAILED")
    assert order.failure_reason == f"stock step failed: insufficient stock for product {product.pk}"
    assert order.steps == all_steps(stock="FAILED")
    assert_nothing_left(user, 50_000, product, 2, user_coupon)
    ledger = list(BalanceTransaction.objects.filter(order_id=order_id).values_list("kind", "amount"))
    assert sorted(ledger) == [("REFUND", 15_000), ("USE", 15_000)]
    assert not StockMovement.objects.filter(order_id=order_id).exists()
    assert not Payment.objects.exists()
    counts = event_counts(published_events)
    assert counts["OrderFailed"] == 1 and counts["OrderPaymentWaited"] == 0
    assert counts["BalanceRefunded"] == 1 and counts["CouponRestored"] == 1 and counts["StockRestored"] == 0
    assert violations(published_events) == []


def test_balance_step_fails_and_the_stock_is_put_back(
    saga_worker, make_user, make_product, place_order, published_events
):
    user = make_user(balance=29_999)
    product = make_product(price=10_000, stock=5)

    order_id = place_order(user, [(product.pk, 3)])

    order = settled(order_id, "FAILED")
    assert order.failure_reason == "balance step failed: insufficient balance"
    assert_nothing_left(user, 29_999, product, 5)
    movements = sorted(StockMovement.objects.filter(order_id=order_id).values_list("kind", "delta"))
    assert movements == [("DEDUCT", -3), ("RESTORE", 3)]
    assert not BalanceTransaction.objects.filter(order_id=order_id).exists()
    assert event_counts(published_events)["StockRestored"] == 1
    assert violations(published_events) == []


def test_coupon_step_fails_when_another_order_took_the_coupon_first(
    saga_worker, make_user, make_product, give_coupon, published_events
):
    # given two orders that both passed the coupon check before either step ran
    user = make_user(balance=100_000)
    product = make_product(price=10_000, stock=10)
    user_coupon = give_coupon(user, rate="0.1")
    with transaction.atomic():
        first = order_create(user_id=user.pk, lines=[OrderLineInput(product.pk, 1)], user_coupon_id=user_coupon.pk)
        second = order_create(user_id=user.pk, lines=[OrderLineInput(product.pk, 2)], user_coupon_id=user_coupon.pk)

    # then exactly one wins the coupon; the other fails and gives back its balance and stock
    outcomes = {order.status: order for order in (finished(first.pk), finished(second.pk))}
    winner, loser = outcomes["COMPLETED"], outcomes["FAILED"]
    assert loser.failure_reason == "coupon step failed: the coupon was already used"
    user_coupon.refresh_from_db()
    assert (user_coupon.status, user_coupon.used_by_order_id) == ("USED", winner.pk)
    assert balance_of(user_id=user.pk) == 100_000 - winner.total_price
    units = {first.pk: 1, second.pk: 2}
    assert Stock.objects.get(product=product).quantity == 10 - units[winner.pk]
    assert violations(published_events) == []


def test_two_steps_fail_and_the_reason_names_both(
    saga_worker, make_user, make_product, give_coupon, place_order, published_events
):
    user = make_user(balance=1_000)
    product = make_product(price=10_000, stock=1)
    user_coupon = give_coupon(user, rate="0.2")

    order_id = place_order(user, [(product.pk, 2)], user_coupon.pk)

    order = settled(order_id, "FAILED")
    assert order.failure_reason == (
        f"balance step failed: insufficient balance; stock step failed: insufficient stock for product {product.pk}"
    )
    assert order.steps == all_steps(balance="FAILED", stock="FAILED")
    assert_nothing_left(user, 1_000, product, 1, user_coupon)
    assert event_counts(published_events)["CouponRestored"] == 1
    assert violations(published_events) == []


def test_all_three_steps_fail_and_nothing_needs_undoing(
    transactional_db, make_user, make_product, give_coupon, place_order, published_events
):
    # given an order whose coupon expires before its steps run
    user = make_user(balance=1_000)
    product = make_product(price=10_000, stock=1)
    user_coupon = give_coupon(user, rate="0.2", expires_in=timedelta(seconds=1))
    order_id = place_order(user, [(product.pk, 2)], user_coupon.pk)
    time.sleep(1.1)

    # when the worker only now picks up the steps
    with running_worker(purge=False):
        order = settled(order_id, "FAILED")

    assert order.steps == all_steps(balance="FAILED", coupon="FAILED", stock="FAILED")
    assert "coupon step failed: the coupon has expired" in order.failure_reason
    assert_nothing_left(user, 1_000, product, 1, user_coupon)
    counts = event_counts(published_events)
    assert counts["OrderFailed"] == 1
    assert counts["BalanceRefunded"] == counts["CouponRestored"] == counts["StockRestored"] == 0
    assert violations(published_events) == []


def test_a_declined_payment_fails_the_order_and_undoes_every_step(
    saga_worker, settings, make_user, make_product, give_coupon, place_order, published_events
):
    settings.PAYMENT_DECLINE_RATE = 1.0
    user = make_user(balance=40_000)
    product = make_product(price=7_000, stock=4)
    user_coupon = give_coupon(user, rate="0.25")

    order_id = place_order(user, [(product.pk, 4)], user_coupon.pk)

    order = settled(order_id, "FAILED")
    assert order.failure_reason == "payment failed: declined by the card issuer"
    assert order.steps == all_steps()
    assert Payment.objects.get(order_id=order_id).status == "FAILED"
    assert_nothing_left(user, 40_000, product, 4, user_coupon)
    ledger = sorted(BalanceTransaction.objects.filter(order_id=order_id).values_list("kind", "amount"))
    assert ledger == [("REFUND", 21_000), ("USE", 21_000)]
    counts = event_counts(published_events)
    assert (counts["OrderPaymentWaited"], counts["PaymentFailed"], counts["OrderFailed"]) == (1, 1, 1)
    assert counts["OrderCompleted"] == 0
    assert violations(published_events) == []


def test_completion_fails_when_the_deadline_failed_the_order_during_payment_so_the_payment_is_cancelled(
    saga_worker, settings, make_user, make_product, give_coupon, place_order, published_events
):
    # given an order whose payment is in flight at a slow gateway
    settings.PAYMENT_LATENCY_MS = 1_500
    user = make_user(balance=40_000)
    product = make_product(price=10_000, stock=3)
    user_coupon = give_coupon(user, rate="0.1")
    order_id = place_order(user, [(product.pk, 2)], user_coupon.pk)
    wait_for(lambda: Payment.objects.filter(order_id=order_id, status="READY").exists(), message="payment in flight")

    # when the sweeper finds it past its deadline, and only then does the gateway approve
    Order.objects.filter(pk=order_id).update(created_at=timezone.now() - timedelta(seconds=61))
    assert orders_recover() == {"failed": 1}
    wait_for(lambda: Payment.objects.filter(order_id=order_id, status="CANCELED").exists(), message="cancel")

    # then completion fails, the payment is cancelled, and every step is undone
    order = settled(order_id, "FAILED")
    assert order.failure_reason == "the payment did not complete before the saga's deadline"
    payment = Payment.objects.get(order_id=order_id)
    assert payment.paid_at and payment.canceled_at
    assert_nothing_left(user, 40_000, product, 3, user_coupon)
    counts = event_counts(published_events)
    assert (counts["PaymentPaid"], counts["OrderCompleteFailed"], counts["PaymentCanceled"]) == (1, 1, 1)
    assert (counts["OrderCompleted"], counts["OrderFailed"]) == (0, 1)
    assert violations(published_events) == []
