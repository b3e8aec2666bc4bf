"""A customer cancels, through the API with a real worker (docs/api.md, "Cancelling"): before completion the
order fails and is compensated; a completed order is cancelled and gives back everything it took."""

import pytest

from apps.balance.models import BalanceTransaction
from apps.balance.selectors import balance_of
from apps.coupons.models import UserCoupon
from apps.dataplatform.models import Delivery
from apps.orders.consistency import violations
from apps.orders.events import OrderCanceled
from apps.payments.models import Payment
from apps.products.models import Stock, StockMovement
from apps.products.rank import rank_top
from tests.saga.conftest import event_counts, settled, side_effects
from tests.saga.test_duplicates import deliver_again
from tests.saga_worker import running_worker, wait_for, wait_until_idle

pytestmark = pytest.mark.django_db(transaction=True)


def cancel(client, order_id: int):
    return client.post(f"/api/v1/orders/{order_id}/cancel")


def test_a_completed_order_cancelled_gives_everything_back(
    saga_worker, make_user, make_product, give_coupon, client_for, place_order, published_events
):
    # given: two completed orders of one product, the first with a coupon
    user = make_user(balance=100_000)
    product = make_product(price=10_000, stock=10)
    user_coupon = give_coupon(user, rate="0.1")
    client = client_for(user)
    cancelled_id = place_order(user, [(product.pk, 3)], user_coupon.pk)
    kept_id = place_order(user, [(product.pk, 2)])
    settled(cancelled_id, "COMPLETED")
    settled(kept_id, "COMPLETED")
    assert client.get("/api/v1/products/ranks").json()[0]["sold_quantity"] == 5

    # when: the customer cancels the first
    response = cancel(client, cancelled_id)

    # then: the answer is the order, CANCELED, and the saga gives back everything it took
    assert response.status_code == 202, response.json()
    assert (response.json()["status"], response.json()["failure_reason"]) == ("CANCELED", None)
    assert response.json()["canceled_at"] is not None
    order = settled(cancelled_id, "CANCELED")
    assert order.completed_at is not None and order.canceled_at > order.completed_at
    assert balance_of(user_id=user.pk) == 100_000 - 20_000  # only the kept order's total
    ledger = sorted(BalanceTransaction.objects.filter(order_id=cancelled_id).values_list("kind", "amount"))
    assert ledger == [("REFUND", 27_000), ("USE", 27_000)]
    assert Stock.objects.get(product=product).quantity == 8
    movements = sorted(StockMovement.objects.filter(order_id=cancelled_id).values_list("kind", "delta"))
    assert movements == [("DEDUCT", -3), ("RESTORE", 3)]
    assert UserCoupon.objects.get(pk=user_coupon.pk).status == "UNUSED"
    assert Payment.objects.get(order_id=cancelled_id).status == "CANCELED"
    assert Payment.objects.get(order_id=kept_id).status == "COMPLETED"
    # the rank lost the cancelled units (the API caches the list briefly: read the rank itself)
    assert rank_top() == [(product.pk, 2)]
    # and the data platform was told, after it heard of the completion
    deliveries = dict(Delivery.objects.filter(order_id=cancelled_id).values_list("event_type", "status"))
    assert deliveries == {"OrderCompleted": "RECORDED", "OrderCanceled": "RECORDED"}
    counts = event_counts(published_events)
    assert (counts["OrderCanceled"], counts["PaymentCanceled"], counts["OrderFailed"]) == (1, 1, 0)
    assert (counts["BalanceRefunded"], counts["CouponRestored"], counts["StockRestored"]) == (1, 1, 1)
    assert violations(published_events) == []
    # and the coupon can be used again
    assert place_order(user, [(product.pk, 1)], user_coupon.pk)


def test_an_undecided_order_cancelled_fails_and_is_compensated(
    transactional_db, make_user, make_product, give_coupon, client_for, place_order, published_events
):
    # given: an order whose steps have not run yet (no worker)
    user = make_user(balance=50_000)
    product = make_product(price=10_000, stock=5)
    user_coupon = give_coupon(user, rate="0.2")
    client = client_for(user)
    order_id = place_order(user, [(product.pk, 2)], user_coupon.pk)

    # when: the customer cancels it
    response = cancel(client, order_id)

    # then: it is FAILED at once, as cancelled by its customer
    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["status"], body["failure_reason"]) == ("FAILED", "canceled by the customer")
    # and once the worker runs, the steps that took effect are undone (a late step is refused)
    with running_worker(purge=False):
        settled(order_id, "FAILED")
    assert balance_of(user_id=user.pk) == 50_000
    assert Stock.objects.get(product=product).quantity == 5
    assert UserCoupon.objects.get(pk=user_coupon.pk).status == "UNUSED"
    assert not Payment.objects.exists()
    counts = event_counts(published_events)
    assert (counts["OrderFailed"], counts["OrderPaymentWaited"], counts["OrderCanceled"]) == (1, 0, 0)
    assert violations(published_events) == []


def test_an_order_cancelled_while_its_payment_is_in_flight_has_its_payment_cancelled(
    saga_worker, settings, make_user, make_product, client_for, place_order, published_events
):
    # given: an order waiting for a slow gateway
    settings.PAYMENT_LATENCY_MS = 1_000
    user = make_user(balance=30_000)
    product = make_product(price=10_000, stock=3)
    client = client_for(user)
    order_id = place_order(user, [(product.pk, 3)])
    wait_for(lambda: Payment.objects.filter(order_id=order_id, status="READY").exists(), message="payment in flight")

    # when: the customer cancels before the gateway answers
    response = cancel(client, order_id)

    # then: the order fails at once; the payment that succeeds afterwards is cancelled
    assert response.status_code == 202
    assert response.json()["status"] == "FAILED"
    wait_for(lambda: Payment.objects.filter(order_id=order_id, status="CANCELED").exists(), message="cancelled")
    order = settled(order_id, "FAILED")
    assert order.failure_reason == "canceled by the customer"
    assert balance_of(user_id=user.pk) == 30_000
    assert Stock.objects.get(product=product).quantity == 3
    counts = event_counts(published_events)
    assert (counts["PaymentPaid"], counts["OrderCompleteFailed"], counts["OrderCompleted"]) == (1, 1, 0)
    assert violations(published_events) == []


def test_the_cancel_saga_delivered_again_in_any_order_gives_back_once(
    saga_worker, make_user, make_product, give_coupon, client_for, place_order, published_events, published_envelopes
):
    # given: a cancelled order whose saga has run
    user = make_user(balance=100_000)
    product = make_product(price=10_000, stock=5)
    user_coupon = give_coupon(user, rate="0.1")
    order_id = place_order(user, [(product.pk, 2)], user_coupon.pk)
    settled(order_id, "COMPLETED")
    assert cancel(client_for(user), order_id).status_code == 202
    settled(order_id, "CANCELED")
    before, counts_before = side_effects(), event_counts(published_events)

    # when: every event of the order is delivered again to every listener, OrderCanceled twice
    deliver_again(list(reversed(published_envelopes)))
    deliver_again(list(published_envelopes), (OrderCanceled,))
    wait_until_idle()

    # then: nothing moves and nothing is published again
    assert side_effects() == before
    counts = event_counts(published_events)
    for name in ("OrderCanceled", "BalanceRefunded", "CouponRestored", "StockRestored", "PaymentCanceled"):
        assert counts[name] == counts_before[name] == 1, name
    assert violations(published_events) == []


@pytest.mark.parametrize("how", ["failed", "canceled"])
def test_an_order_already_ended_cannot_be_cancelled(
    how, saga_worker, make_user, make_product, client_for, place_order, published_events
):
    user = make_user(balance=10_000)
    product = make_product(price=10_000, stock=1 if how == "canceled" else 0)
    client = client_for(user)
    order_id = place_order(user, [(product.pk, 1)])
    if how == "canceled":
        settled(order_id, "COMPLETED")
        assert cancel(client, order_id).status_code == 202
    settled(order_id, how.upper())
    before = side_effects()

    response = cancel(client, order_id)

    assert response.status_code == 409
    assert response.json()["code"] == "order_not_cancelable"
    assert response.json()["details"] == {"status": how.upper()}
    wait_until_idle()
    assert side_effects() == before
    assert violations(published_events) == []
