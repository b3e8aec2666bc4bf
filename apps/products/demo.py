"""The products' demo data for `manage.py seed_demo` (common/demo.py): products on sale, each with stock."""

from collections.abc import Mapping, Sequence
from typing import Any

from django.core.management.base import CommandParser

from apps.products.services import product_create
from common.demo import DemoUser, int_in_range


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument("--products", type=int, default=5, help="how many products (default 5)")
    parser.add_argument("--stock", type=int, default=100, help="each product's stock (default 100)")
    parser.add_argument("--price", type=int, default=10_000, help="each product's price in won (default 10000)")


def seed(*, options: Mapping[str, Any], tag: str, users: Sequence[DemoUser]) -> dict[str, Any]:
    count = int_in_range(options["products"], name="--products", low=0)
    stock = int_in_range(options["stock"], name="--stock", low=0)
    price = int_in_range(options["price"], name="--price", low=1)
    products = []
    for number in range(1, count + 1):
        product = product_create(name=f"Demo {tag} product {number}", price=price, stock=stock)
        products.append({"id": product.pk, "name": product.name, "price": product.price, "stock": stock})
    return {"products": products}
