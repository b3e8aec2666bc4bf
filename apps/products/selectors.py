"""Reads the products app offers: to the API and, for order creation, to the orders app."""

from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet

from apps.products.models import Product, ProductStatus
from apps.products.rank import rank_restore_lost, rank_top
from apps.products.sales import shop_today


@dataclass(frozen=True)
class ProductForOrder:
    id: int
    name: str
    price: int
    orderable: bool


def products_for_order(product_ids: Iterable[int]) -> dict[int, ProductForOrder]:
    """Price and orderability of the given products; unknown ids are absent."""
    return {
        product.id: ProductForOrder(
            id=product.id, name=product.name, price=product.price, orderable=product.status == ProductStatus.SELLING
        )
        for product in Product.objects.filter(pk__in=set(product_ids))
    }


def selling_products() -> QuerySet[Product]:
    return Product.objects.filter(status=ProductStatus.SELLING).select_related("stock").order_by("id")


def rank_cache_key() -> str:
    """Per day, so that a new day never serves yesterday's list."""
    return f"products:popular:{shop_today():%Y%m%d}"


def popular_products() -> list[dict]:
    """The top sellers of the last days, cached briefly: the rank moves with every completed order. A day
    that Redis lost is rebuilt from PostgreSQL first; a list read while another process still rebuilds
    one is served but not cached."""
    cached = cache.get(rank_cache_key())
    if cached is not None:
        return cached
    restored = rank_restore_lost()
    top = rank_top()
    names = Product.objects.in_bulk([product_id for product_id, _ in top])
    result = [
        {"id": product_id, "name": names[product_id].name, "price": names[product_id].price, "sold_quantity": sold}
        for product_id, sold in top
        if product_id in names
    ]
    if not restored.still_lost:
        cache.set(rank_cache_key(), result, settings.RANK_CACHE_SECONDS)
    return result
