"""order_cancel, the service: which move a cancel makes from each status, what it publishes, and what a
late event of the saga does to a cancelled order. Raced in tests/concurrency/test_cancel_race.py, run
through the API with a worker in tests/saga/test_cancel.py."""

import pytest

from apps.orders.events import OrderCanceled, OrderFailed, OrderLine
from apps.orders.models import Order, OrderStatus
from apps.orders.services import (
    OrderLineInput,
    OrderNotCancelable,
    order_cancel,
    order_complete,
    order_create,
)
from tests.participants import all_steps, record_every_step

pytestmark = pytest.mark.django_db


@pytest.fixture
def order_in(make_user, make_product, give_coupon, published_events):
    """An order with a coupon brought to `status` through the saga's own services; the events published
    on the way are left out."""

    def make(status: str) -> Order:
        user = make_user(balance=100_000)
        user_coupon = give_coupon(user, rate="0.1")
        order = order_create(
            user_id=user.pk, lines=[OrderLineInput(make_product(price=10_000).pk, 2)], user_coupon_id=user_coupon.pk
        )
        if status != OrderStatus.CREATED:
            record_every_step(order)
        if status in (OrderStatus.COMPLETED, OrderStatus.CANCELED):
            order_complete(order_id=order.pk)
        if status == OrderStatus.CANCELED:
            order_cancel(order_id=order.pk)
        published_events.clear()
        order.refresh_from_db()
        assert order.status == status
        return order

    return make


@pytest.mark.parametrize("status", [OrderStatus.CREATED, OrderStatus.PAYMENT_WAITING])
def test_an_order_not_completed_is_failed_once_by_its_customer(order_in, status, published_events):
    order = order_in(status)

    assert order_cancel(order_id=order.pk) == OrderStatus.FAILED

    order.refresh_from_db()
    assert (order.status, order.failure_reason) == (OrderStatus.FAILED, "canceled by the customer")
    assert order.failed_at is not None and order.canceled_at is None
    if status == OrderStatus.PAYMENT_WAITING:
        assert order.steps == all_steps()  # the decided steps are kept
    assert published_events == [
        OrderFailed(
            order_id=order.pk,
            user_id=order.user_id,
            user_coupon_id=order.user_coupon_id,
            reason="canceled by the customer",
            participants=tuple(order.participants),
        )
    ]


def test_a_completed_order_is_cancelled_once_and_says_what_to_give_back(order_in, published_events):
    order = order_in(OrderStatus.COMPLETED)

    assert order_cancel(order_id=order.pk, by="operator kim") == OrderStatus.CANCELED

    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELED and order.canceled_at > order.completed_at
    assert order.failure_reason == ""
    [item] = order.items.all()
    assert published_events == [
        OrderCanceled(
            order_id=order.pk,
            user_id=order.user_id,
            user_coupon_id=order.user_coupon_id,
            items=(OrderLine(item.product_id, 2, 10_000),),
            total_price=18_000,
            completed_at=order.completed_at,
            canceled_at=order.canceled_at,
            reason="canceled by operator kim",
            participants=tuple(order.participants),
        )
    ]


@pytest.mark.parametrize("status", [OrderStatus.FAILED, OrderStatus.CANCELED])
def test_an_ended_order_is_not_cancelable_and_nothing_is_published(order_in, status, published_events):
    order = order_in(OrderStatus.CREATED if status == OrderStatus.FAILED else status)
    if status == OrderStatus.FAILED:
        order_cancel(order_id=order.pk)
        published_events.clear()

    with pytest.raises(OrderNotCancelable) as refusal:
        order_cancel(order_id=order.pk)

    assert refusal.value.details == {"status": status}
    assert published_events == []


def test_a_late_payment_of_a_cancelled_order_completes_nothing_and_fails_nothing(order_in, published_events):
    # given: a completed order that its customer cancelled
    order = order_in(OrderStatus.CANCELED)

    # when: its PaymentPaid is delivered again (a redelivery, or the relay's resend)
    completed = order_complete(order_id=order.pk)

    # then: it stays CANCELED, and no OrderCompleteFailed asks to cancel the payment a second time
    assert completed is False
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELED
    assert published_events == []
