import pytest
from django.core.cache import cache
from django.utils import timezone

from apps.products.models import ProductStatus
from apps.products.rank import rank_add_order
from apps.products.selectors import (
    ProductForOrder,
    popular_products,
    products_for_order,
    rank_cache_key,
    selling_products,
)

pytestmark = pytest.mark.django_db


def sell(order_id: int, *lines: tuple[int, int]) -> None:
    rank_add_order(order_id=order_id, sold_at=timezone.now(), lines=lines)


def test_products_for_order_gives_price_and_orderability_and_omits_unknown_ids(make_product):
    # given
    selling = make_product(price=1_000, status=ProductStatus.SELLING)
    held = make_product(price=2_000, status=ProductStatus.HOLD)
    stopped = make_product(price=3_000, status=ProductStatus.STOP_SELLING)

    # when
    found = products_for_order([selling.pk, held.pk, stopped.pk, 987_654_321])

    # then
    assert found == {
        selling.pk: ProductForOrder(id=selling.pk, name=selling.name, price=1_000, orderable=True),
        held.pk: ProductForOrder(id=held.pk, name=held.name, price=2_000, orderable=False),
        stopped.pk: ProductForOrder(id=stopped.pk, name=stopped.name, price=3_000, orderable=False),
    }


def test_selling_products_lists_only_selling_ones_by_id(make_product):
    # given
    first = make_product(stock=4)
    make_product(status=ProductStatus.HOLD)
    second = make_product(stock=0)

    # then
    assert [(product.pk, product.stock.quantity) for product in selling_products()] == [(first.pk, 4), (second.pk, 0)]


def test_popular_products_gives_id_name_price_and_sold_quantity_most_sold_first(make_product):
    # given
    kettle = make_product(name="Kettle", price=25_000)
    mug = make_product(name="Mug", price=5_000)
    sell(1, (mug.pk, 2), (kettle.pk, 1))
    sell(2, (mug.pk, 1))

    # when
    popular = popular_products()

    # then
    assert popular == [
        {"id": mug.pk, "name": "Mug", "price": 5_000, "sold_quantity": 3},
        {"id": kettle.pk, "name": "Kettle", "price": 25_000, "sold_quantity": 1},
    ]


def test_popular_products_leaves_out_products_that_no_longer_exist(make_product):
    # given
    mug = make_product(name="Mug", price=5_000)
    sell(1, (mug.pk, 1), (987_654_321, 50))

    # then
    assert popular_products() == [{"id": mug.pk, "name": "Mug", "price": 5_000, "sold_quantity": 1}]


def test_popular_products_is_cached_for_rank_cache_seconds(make_product, settings):
    # given a first read is cached
    settings.RANK_CACHE_SECONDS = 7
    mug = make_product(name="Mug", price=5_000)
    sell(1, (mug.pk, 1))
    first = popular_products()

    # when more is sold
    sell(2, (mug.pk, 4))

    # then the cached answer stands until the cache entry goes
    assert popular_products() == first == [{"id": mug.pk, "name": "Mug", "price": 5_000, "sold_quantity": 1}]
    assert 0 < cache.ttl(rank_cache_key()) <= 7
    cache.delete(rank_cache_key())
    assert popular_products() == [{"id": mug.pk, "name": "Mug", "price": 5_000, "sold_quantity": 5}]
