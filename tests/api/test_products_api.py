"""GET /api/v1/products and GET /api/v1/products/ranks."""

import pytest

from apps.orders.models import Order
from tests.saga_worker import wait_for, wait_until_idle


@pytest.mark.django_db
def test_the_product_list_shows_only_selling_products_with_their_stock(make_user, make_product, client_for):
    # given
    first = make_product(price=12_000, stock=7)
    make_product(status="HOLD")
    make_product(status="STOP_SELLING")
    second = make_product(price=3_500, stock=0)

    # when
    response = client_for(make_user()).get("/api/v1/products")

    # then
    assert response.status_code == 200, response.json()
    assert response.json() == [
        {"id": first.pk, "name": first.name, "price": 12_000, "stock": 7, "status": "SELLING"},
        {"id": second.pk, "name": second.name, "price": 3_500, "stock": 0, "status": "SELLING"},
    ]


@pytest.mark.django_db
def test_the_product_list_is_empty_when_nothing_is_on_sale(make_user, make_product, client_for):
    # given
    make_product(status="HOLD")

    # when
    response = client_for(make_user()).get("/api/v1/products")

    # then
    assert response.status_code == 200, response.json()
    assert response.json() == []


@pytest.mark.django_db
def test_the_ranks_are_an_empty_list_when_nothing_was_sold(make_user, make_product, client_for):
    # given
    make_product()

    # when
    response = client_for(make_user()).get("/api/v1/products/ranks")

    # then
    assert response.status_code == 200, response.json()
    assert response.json() == []


@pytest.mark.django_db
def test_an_order_that_is_only_created_does_not_count_in_the_ranks(make_user, make_product, client_for):
    # given: no worker, so the order stays CREATED
    client = client_for(make_user(balance=100_000))
    product = make_product()
    created = client.post("/api/v1/orders", {"items": [{"product_id": product.pk, "quantity": 2}]}, format="json")
    assert created.status_code == 201, created.json()

    # when
    response = client.get("/api/v1/products/ranks")

    # then
    assert response.status_code == 200, response.json()
    assert response.json() == []


@pytest.mark.django_db(transaction=True)
def test_the_ranks_show_a_product_sold_by_a_completed_order(saga_worker, make_user, make_product, client_for):
    # given
    client = client_for(make_user(balance=100_000))
    sold, more_sold = make_product(price=4_000), make_product(price=1_500)
    make_product()  # never sold

    # when
    response = client.post(
        "/api/v1/orders",
        {"items": [{"product_id": sold.pk, "quantity": 2}, {"product_id": more_sold.pk, "quantity": 5}]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    order_id = response.json()["id"]
    wait_for(lambda: Order.objects.get(pk=order_id).status == "COMPLETED", message="order completed")
    wait_until_idle()
    ranks = client.get("/api/v1/products/ranks")

    # then
    assert ranks.status_code == 200, ranks.json()
    assert ranks.json() == [
        {"id": more_sold.pk, "name": more_sold.name, "price": 1_500, "sold_quantity": 5},
        {"id": sold.pk, "name": sold.name, "price": 4_000, "sold_quantity": 2},
    ]
