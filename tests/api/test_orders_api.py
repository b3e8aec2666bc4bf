"""POST /api/v1/orders, GET /api/v1/orders/{order_id} and GET /api/v1/orders: the order's shape."""

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.balance.selectors import balance_of
from apps.orders.models import Order
from apps.products.models import Stock
from tests.participants import all_steps
from tests.saga_worker import wait_for, wait_until_idle

ORDER_KEYS = {
    "canceled_at",
    "id",
    "user_id",
    "status",
    "failure_reason",
    "items",
    "user_coupon_id",
    "gross_price",
    "discount_price",
    "total_price",
    "steps",
    "payment",
    "created_at",
    "completed_at",
}


def _create(client, items, user_coupon_id=None):
    return client.post("/api/v1/orders", {"items": items, "user_coupon_id": user_coupon_id}, format="json")


@pytest.mark.django_db
def test_creating_an_order_answers_201_with_the_documented_order(make_user, make_product, client_for):
    # given
    user = make_user(balance=100_000)
    cheap, dear = make_product(price=1_500, stock=10), make_product(price=10_000, stock=10)
    before = timezone.now()

    # when
    response = _create(
        client_for(user), [{"product_id": dear.pk, "quantity": 2}, {"product_id": cheap.pk, "quantity": 3}]
    )

    # then
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == ORDER_KEYS
    order = Order.objects.get()
    assert body["id"] == order.pk
    assert body["user_id"] == user.pk
    assert body["status"] == "CREATED"
    assert body["failure_reason"] is None
    assert sorted(body["items"], key=lambda item: item["product_id"]) == sorted(
        [
            {"product_id": dear.pk, "quantity": 2, "unit_price": 10_000},
            {"product_id": cheap.pk, "quantity": 3, "unit_price": 1_500},
        ],
        key=lambda item: item["product_id"],
    )
    assert body["user_coupon_id"] is None
    assert (body["gross_price"], body["discount_price"], body["total_price"]) == (24_500, 0, 24_500)
    # No coupon: nothing to use, so that step counts as done (docs/design.md §2); the others wait for the worker.
    assert body["steps"] == all_steps(balance="PENDING", stock="PENDING")
    assert body["payment"] is None
    assert before <= parse_datetime(body["created_at"]) <= timezone.now()
    assert body["completed_at"] is None


@pytest.mark.django_db
def test_an_order_with_a_coupon_is_discounted_and_all_its_steps_wait(make_user, make_product, give_coupon, client_for):
    # given
    user = make_user(balance=100_000)
    product = make_product(price=12_345)
    user_coupon = give_coupon(user, rate="0.15")

    # when
    response = _create(client_for(user), [{"product_id": product.pk, "quantity": 3}], user_coupon.pk)

    # then
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == ORDER_KEYS
    assert body["user_coupon_id"] == user_coupon.pk
    assert body["gross_price"] == 37_035
    assert body["discount_price"] == 5_555  # floor(37035 × 0.15)
    assert body["total_price"] == 37_035 - 5_555
    assert body["steps"] == all_steps(balance="PENDING", coupon="PENDING", stock="PENDING")
    assert body["payment"] is None


@pytest.mark.django_db
def test_the_same_product_on_two_lines_is_one_item(make_user, make_product, client_for):
    # given
    user = make_user(balance=100_000)
    product = make_product(price=1_000)

    # when
    response = _create(
        client_for(user), [{"product_id": product.pk, "quantity": 2}, {"product_id": product.pk, "quantity": 3}]
    )

    # then
    assert response.status_code == 201, response.json()
    assert response.json()["items"] == [{"product_id": product.pk, "quantity": 5, "unit_price": 1_000}]
    assert response.json()["total_price"] == 5_000


@pytest.mark.django_db
def test_creating_an_order_neither_charges_nor_deducts_before_the_saga_runs(make_user, make_product, client_for):
    # given: no worker
    user = make_user(balance=100_000)
    product = make_product(price=1_000, stock=10)

    # when
    response = _create(client_for(user), [{"product_id": product.pk, "quantity": 4}])

    # then
    assert response.status_code == 201, response.json()
    assert balance_of(user_id=user.pk) == 100_000
    assert Stock.objects.get(product=product).quantity == 10


@pytest.mark.django_db
def test_the_order_detail_is_the_order_as_created(make_user, make_product, give_coupon, client_for):
    # given
    user = make_user(balance=100_000)
    client = client_for(user)
    created = _create(
        client, [{"product_id": make_product(price=2_000).pk, "quantity": 1}], give_coupon(user, rate="0.5").pk
    )
    assert created.status_code == 201, created.json()

    # when
    response = client.get(f"/api/v1/orders/{created.json()['id']}")

    # then
    assert response.status_code == 200, response.json()
    assert response.json() == created.json()


@pytest.mark.django_db
def test_the_order_list_shows_orders_in_the_same_shape(make_user, make_product, client_for):
    # given
    user = make_user(balance=100_000)
    client = client_for(user)
    created = _create(client, [{"product_id": make_product().pk, "quantity": 1}])

    # when
    response = client.get("/api/v1/orders")

    # then
    assert response.status_code == 200, response.json()
    assert response.json() == {"count": 1, "next": None, "previous": None, "results": [created.json()]}


@pytest.mark.django_db
def test_the_order_steps_follow_the_process_hash_while_the_saga_runs(make_user, make_product, client_for):
    # given: the stock step has reported, as the worker would have written it
    from apps.orders.process import record_step

    user = make_user(balance=100_000)
    client = client_for(user)
    order_id = _create(client, [{"product_id": make_product().pk, "quantity": 1}]).json()["id"]
    record_step(order_id, "stock", succeeded=True)

    # when
    response = client.get(f"/api/v1/orders/{order_id}")

    # then
    assert response.json()["steps"] == all_steps(balance="PENDING")
    assert response.json()["status"] == "CREATED"


@pytest.mark.django_db(transaction=True)
def test_a_completed_order_shows_its_payment_and_completion(saga_worker, make_user, make_product, client_for):
    # given
    user = make_user(balance=100_000)
    client = client_for(user)
    product = make_product(price=7_000, stock=5)

    # when
    created = _create(client, [{"product_id": product.pk, "quantity": 2}])
    assert created.status_code == 201, created.json()
    order_id = created.json()["id"]
    wait_for(lambda: Order.objects.get(pk=order_id).status == "COMPLETED", message="order completed")
    wait_until_idle()
    response = client.get(f"/api/v1/orders/{order_id}")

    # then
    assert response.status_code == 200, response.json()
    body = response.json()
    assert set(body) == ORDER_KEYS
    assert body["status"] == "COMPLETED"
    assert body["failure_reason"] is None
    assert body["steps"] == all_steps()
    assert set(body["payment"]) == {"id", "status", "amount"}
    assert body["payment"]["status"] == "COMPLETED" and body["payment"]["amount"] == 14_000
    assert parse_datetime(body["completed_at"]) >= parse_datetime(body["created_at"])
    assert balance_of(user_id=user.pk) == 86_000


@pytest.mark.django_db(transaction=True)
def test_a_failed_order_shows_a_readable_reason(saga_worker, make_user, make_product, client_for):
    # given: not enough balance
    user = make_user(balance=1_000)
    client = client_for(user)
    product = make_product(price=7_000, stock=5)

    # when
    created = _create(client, [{"product_id": product.pk, "quantity": 1}])
    assert created.status_code == 201, created.json()
    order_id = created.json()["id"]
    wait_for(lambda: Order.objects.get(pk=order_id).status == "FAILED", message="order failed")
    wait_until_idle()
    response = client.get(f"/api/v1/orders/{order_id}")

    # then
    assert response.status_code == 200, response.json()
    body = response.json()
    assert set(body) == ORDER_KEYS
    assert body["status"] == "FAILED"
    assert isinstance(body["failure_reason"], str) and body["failure_reason"]
    assert body["steps"]["balance"] == "FAILED"
    assert body["payment"] is None
    assert body["completed_at"] is None
    assert balance_of(user_id=user.pk) == 1_000
    assert Stock.objects.get(product=product).quantity == 5
