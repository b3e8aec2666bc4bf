"""order_create: pricing, discount, validation, and OrderCreated leaving only when the order commits."""

import base64
import json
from datetime import timedelta
from uuid import UUID

import pytest
from django.conf import settings
from django.utils import timezone

from apps.coupons.models import Coupon
from apps.coupons.services import coupon_use
from apps.orders.events import OrderCreated, OrderLine
from apps.orders.models import Order, OrderItem, OrderStatus
from apps.orders.services import OrderLineInput, order_create
from common.errors import ApplicationError
from common.queues import SAGA_GROUPS, queues_of
from common.redis import redis_client
from eventbus.models import OutboxMessage

pytestmark = pytest.mark.django_db


def queued_tasks(queue: str) -> list[tuple[str, tuple]]:
    """The tasks waiting in a broker queue (a Redis list, pushed left, popped right), oldest first."""
    messages = [json.loads(raw) for raw in reversed(redis_client().lrange(queue, 0, -1))]
    return [
        (message["headers"]["task"], tuple(json.loads(base64.b64decode(message["body"]))[0])) for message in messages
    ]


def assert_nothing_happened(published_events, callbacks, *, orders_before: int = 0, items_before: int = 0) -> None:
    assert Order.objects.count() == orders_before
    assert OrderItem.objects.count() == items_before
    assert published_events == []
    assert callbacks == []


def test_an_order_is_saved_created_with_the_products_prices(make_user, make_product):
    # given
    user = make_user()
    shirt = make_product(price=12_000)
    socks = make_product(price=3_500)

    # when
    order = order_create(user_id=user.pk, lines=[OrderLineInput(socks.pk, 2), OrderLineInput(shirt.pk, 1)])

    # then
    order.refresh_from_db()
    assert order.status == OrderStatus.CREATED
    assert order.user_id == user.pk
    assert (order.gross_price, order.discount_price, order.total_price) == (19_000, 0, 19_000)
    assert order.user_coupon_id is None
    assert order.steps is None and order.decided_at is None and order.failure_reason == ""
    assert sorted(order.items.values_list("product_id", "quantity", "unit_price")) == sorted(
        [(shirt.pk, 1, 12_000), (socks.pk, 2, 3_500)]
    )


def test_order_created_is_published_once_and_dispatched_to_the_three_steps_only_on_commit(
    make_user, make_product, give_coupon, published_events, django_capture_on_commit_callbacks
):
    # given
    user = make_user()
    product = make_product(price=10_000)
    user_coupon = give_coupon(user, rate="0.25")

    # when the order is created, its transaction not yet committed
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        order = order_create(user_id=user.pk, lines=[OrderLineInput(product.pk, 2)], user_coupon_id=user_coupon.pk)

    # then the event is published, but no task has left yet
    assert published_events == [
        OrderCreated(
            order_id=order.pk,
            user_id=user.pk,
            user_coupon_id=user_coupon.pk,
            items=(OrderLine(product.pk, 2, 10_000),),
            total_price=15_000,
            discount_price=5_000,
            participants=("balance", "coupon", "stock"),  # the customer has no points account (tests/loyalty)
        )
    ]
    assert {queue: queued_tasks(queue) for queue in queues_of(SAGA_GROUPS) if queued_tasks(queue)} == {}
    dispatches = [callback for callback in callbacks if getattr(callback, "__name__", "") == "dispatch_on_commit"]
    assert len(dispatches) == 1  # one on-commit dispatch for the event's three listeners
    assert OutboxMessage.objects.filter(order_id=order.pk, dispatched_at__isnull=True).count() == 3

    # when the transaction commits
    for callback in callbacks:
        callback()

    # then each step's task is on its app's queue, carrying the same envelope
    queued = {queue: queued_tasks(queue) for queue in queues_of(SAGA_GROUPS)}
    assert {queue: [name for name, _ in tasks] for queue, tasks in queued.items() if tasks} == {
        "balance": ["apps.balance.tasks.use_balance_task"],
        "coupons": ["apps.coupons.tasks.use_coupon_task"],
        "products": ["apps.products.tasks.deduct_stock_task"],
    }
    envelopes = [args[0] for tasks in queued.values() for _, args in tasks]
    assert all(envelope == envelopes[0] for envelope in envelopes)
    assert OutboxMessage.objects.filter(order_id=order.pk, dispatched_at__isnull=False).count() == 3
    envelope = envelopes[0]
    assert set(envelope) == {
        "event_id", "event_type", "occurred_at", "source", "correlation_id", "causation_id", "data"
    }  # fmt: skip
    assert UUID(envelope["event_id"]).version == 4
    # the first event of the order's saga: its correlation names the order, and nothing caused it
    assert envelope["correlation_id"] == f"order-{order.pk}" and envelope["causation_id"] is None
    assert envelope["event_type"] == "OrderCreated" and envelope["source"] == "orders"
    assert envelope["occurred_at"].endswith("Z")
    assert envelope["data"] == {
        "order_id": order.pk,
        "user_id": user.pk,
        "user_coupon_id": user_coupon.pk,
        "items": [{"product_id": product.pk, "quantity": 2, "unit_price": 10_000}],
        "total_price": 15_000,
        "discount_price": 5_000,
        "participants": ["balance", "coupon", "stock"],
    }


@pytest.mark.parametrize(
    ("price", "quantity", "rate", "discount"),
    [
        (9_999, 1, "0.15", 1_499),  # 1499.85
        (100, 1, "0.29", 29),  # exactly 29, where binary floats give 28.999…
        (10_000, 3, "0.3333", 9_999),  # exactly 9999
        (7, 1, "0.3333", 2),  # 2.3331
        (1, 1, "0.9999", 0),  # 0.9999
        (12_345, 2, "0", 0),
    ],
)
def test_the_discount_is_the_floor_of_gross_times_rate_computed_exactly(
    make_user, make_product, give_coupon, published_events, price, quantity, rate, discount
):
    # given
    user = make_user()
    product = make_product(price=price)
    user_coupon = give_coupon(user, rate=rate)

    # when
    order = order_create(user_id=user.pk, lines=[OrderLineInput(product.pk, quantity)], user_coupon_id=user_coupon.pk)

    # then
    order.refresh_from_db()
    gross = price * quantity
    assert (order.gross_price, order.discount_price, order.total_price) == (gross, discount, gross - discount)
    assert order.user_coupon_id == user_coupon.pk
    [event] = published_events
    assert (event.discount_price, event.total_price) == (discount, gross - discount)


def test_duplicate_product_lines_are_merged_into_one_item(make_user, make_product, published_events):
    # given
    user = make_user()
    pen = make_product(price=1_000)
    ink = make_product(price=300)

    # when
    order = order_create(
        user_id=user.pk,
        lines=[OrderLineInput(pen.pk, 2), OrderLineInput(ink.pk, 1), OrderLineInput(pen.pk, 3)],
    )

    # then
    assert sorted(order.items.values_list("product_id", "quantity", "unit_price")) == sorted(
        [(pen.pk, 5, 1_000), (ink.pk, 1, 300)]
    )
    assert order.gross_price == order.total_price == 5_300
    [event] = published_events
    assert set(event.items) == {OrderLine(pen.pk, 5, 1_000), OrderLine(ink.pk, 1, 300)}


@pytest.mark.parametrize("status", ["HOLD", "STOP_SELLING"])
def test_a_product_not_on_sale_cannot_be_ordered(
    make_user, make_product, published_events, django_capture_on_commit_callbacks, status
):
    # given
    user = make_user(balance=100_000)
    selling = make_product(status="SELLING")
    not_selling = make_product(status=status)

    # when
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(ApplicationError) as refusal:
        order_create(user_id=user.pk, lines=[OrderLineInput(selling.pk, 1), OrderLineInput(not_selling.pk, 1)])

    # then
    assert refusal.value.code == "product_not_orderable"
    assert refusal.value.details == {"product_ids": [not_selling.pk]}
    assert_nothing_happened(published_events, callbacks)


def test_an_unknown_product_cannot_be_ordered(
    make_user, make_product, published_events, django_capture_on_commit_callbacks
):
    # given
    user = make_user()
    known = make_product()
    unknown_ids = [known.pk + 1_000, known.pk + 999]

    # when
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(ApplicationError) as refusal:
        order_create(user_id=user.pk, lines=[OrderLineInput(known.pk, 1), *(OrderLineInput(i, 1) for i in unknown_ids)])

    # then
    assert refusal.value.code == "product_not_orderable"
    assert refusal.value.details == {"product_ids": sorted(unknown_ids)}
    assert_nothing_happened(published_events, callbacks)


def _someone_elses_coupon(user, make_user, give_coupon, make_product):
    return give_coupon(make_user()).pk


def _a_used_coupon(user, make_user, give_coupon, make_product):
    user_coupon = give_coupon(user)
    earlier = order_create(user_id=user.pk, lines=[OrderLineInput(make_product().pk, 1)], user_coupon_id=user_coupon.pk)
    assert coupon_use(order_id=earlier.pk, user_coupon_id=user_coupon.pk, user_id=user.pk).succeeded
    return user_coupon.pk


def _an_expired_coupon(user, make_user, give_coupon, make_product):
    user_coupon = give_coupon(user)
    Coupon.objects.filter(pk=user_coupon.coupon_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    return user_coupon.pk


def _a_coupon_that_does_not_exist(user, make_user, give_coupon, make_product):
    return give_coupon(user).pk + 1_000


@pytest.mark.parametrize(
    "coupon_of", [_someone_elses_coupon, _a_used_coupon, _an_expired_coupon, _a_coupon_that_does_not_exist]
)
def test_a_coupon_the_user_cannot_use_refuses_the_order(
    make_user, make_product, give_coupon, published_events, django_capture_on_commit_callbacks, coupon_of
):
    # given
    user = make_user(balance=100_000)
    user_coupon_id = coupon_of(user, make_user, give_coupon, make_product)
    product = make_product()
    orders_before, items_before = Order.objects.count(), OrderItem.objects.count()
    published_events.clear()

    # when
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(ApplicationError) as refusal:
        order_create(user_id=user.pk, lines=[OrderLineInput(product.pk, 1)], user_coupon_id=user_coupon_id)

    # then
    assert refusal.value.code == "coupon_not_usable"
    assert_nothing_happened(published_events, callbacks, orders_before=orders_before, items_before=items_before)


def test_a_full_discount_coupon_is_refused_because_the_total_would_be_zero(
    make_user, make_product, give_coupon, published_events, django_capture_on_commit_callbacks
):
    # given
    user = make_user()
    product = make_product(price=5_000)
    user_coupon = give_coupon(user, rate="1")

    # when
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(ApplicationError) as refusal:
        order_create(user_id=user.pk, lines=[OrderLineInput(product.pk, 1)], user_coupon_id=user_coupon.pk)

    # then
    assert refusal.value.code == "validation_error"
    assert_nothing_happened(published_events, callbacks)


def test_an_order_without_items_is_refused(make_user, published_events, django_capture_on_commit_callbacks):
    # given
    user = make_user()

    # when
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(ApplicationError) as refusal:
        order_create(user_id=user.pk, lines=[])

    # then
    assert refusal.value.code == "validation_error"
    assert_nothing_happened(published_events, callbacks)


def test_an_order_may_hold_at_most_max_order_lines_products(
    make_user, make_product, published_events, django_capture_on_commit_callbacks
):
    # given
    user = make_user()
    products = [make_product(price=100) for _ in range(settings.MAX_ORDER_LINES + 1)]

    # when one product too many is ordered
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(ApplicationError) as refusal:
        order_create(user_id=user.pk, lines=[OrderLineInput(product.pk, 1) for product in products])

    # then
    assert refusal.value.code == "validation_error"
    assert_nothing_happened(published_events, callbacks)

    # when exactly the maximum is ordered
    order = order_create(user_id=user.pk, lines=[OrderLineInput(product.pk, 1) for product in products[1:]])

    # then
    assert order.items.count() == settings.MAX_ORDER_LINES


@pytest.mark.parametrize(
    "quantities",
    [[0], [-1], [settings.MAX_LINE_QUANTITY + 1], [settings.MAX_LINE_QUANTITY, 1]],
    ids=["zero", "negative", "over the maximum", "over the maximum once merged"],
)
def test_a_quantity_out_of_range_is_refused(
    make_user, make_product, published_events, django_capture_on_commit_callbacks, quantities
):
    # given
    user = make_user()
    product = make_product()

    # when
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(ApplicationError) as refusal:
        order_create(user_id=user.pk, lines=[OrderLineInput(product.pk, quantity) for quantity in quantities])

    # then
    assert refusal.value.code == "validation_error"
    assert_nothing_happened(published_events, callbacks)


def test_the_maximum_quantity_is_accepted(make_user, make_product):
    # given
    user = make_user()
    product = make_product(price=10)

    # when
    order = order_create(user_id=user.pk, lines=[OrderLineInput(product.pk, settings.MAX_LINE_QUANTITY)])

    # then
    assert order.items.get().quantity == settings.MAX_LINE_QUANTITY
    assert order.total_price == 10 * settings.MAX_LINE_QUANTITY
