from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from django.conf import settings
from django.db import transaction

from apps.coupons.selectors import usable_coupon_for_order
from apps.orders.models import Order, OrderItem
from apps.orders.services.moves import order_placed
from apps.orders.services.order_events import order_created_event
from apps.products.selectors import products_for_order
from common.errors import ApplicationError
from common.participants import participants_of
from eventbus import publish

# The largest amount the money columns (PostgreSQL bigint) hold.
MAX_ORDER_PRICE = 2**63 - 1


class ProductNotOrderable(ApplicationError):
    code = "product_not_orderable"


@dataclass(frozen=True)
class OrderLineInput:
    product_id: int
    quantity: int


def discount_for(gross_price: int, discount_rate: Decimal) -> int:
    """floor(gross × rate), computed exactly."""
    return int((Decimal(gross_price) * Decimal(discount_rate)).to_integral_value(rounding=ROUND_FLOOR))


def _merge(lines: list[OrderLineInput]) -> dict[int, int]:
    quantities: dict[int, int] = {}
    for line in lines:
        quantities[line.product_id] = quantities.get(line.product_id, 0) + line.quantity
    return quantities


def _validate(quantities: dict[int, int]) -> None:
    if not quantities:
        raise ApplicationError("An order needs at least one item.", code="validation_error")
    if len(quantities) > settings.MAX_ORDER_LINES:
        raise ApplicationError(
            f"An order may hold at most {settings.MAX_ORDER_LINES} products.", code="validation_error"
        )
    for product_id, quantity in quantities.items():
        if not 0 < quantity <= settings.MAX_LINE_QUANTITY:
            raise ApplicationError(
                f"The quantity of product {product_id} must be between 1 and {settings.MAX_LINE_QUANTITY}.",
                code="validation_error",
            )


@dataclass(frozen=True)
class PricedOrder:
    """An order's lines merged and priced, before anything is written."""

    quantities: dict[int, int]  # product id → units, in product-id order
    unit_prices: dict[int, int]  # product id → price
    gross_price: int
    discount_price: int

    @property
    def total_price(self) -> int:
        return self.gross_price - self.discount_price


def order_price(*, user_id: int, lines: list[OrderLineInput], user_coupon_id: int | None = None) -> PricedOrder:
    """Merge and validate the lines, check the products can be ordered and the coupon used, and price the
    order. Raises an ApplicationError (a 400) for anything the order cannot be placed with."""
    quantities = _merge(lines)
    _validate(quantities)
    products = products_for_order(quantities)
    unknown = sorted(set(quantities) - set(products))
    if unknown:
        raise ProductNotOrderable("Some products do not exist.", details={"product_ids": unknown})
    not_selling = sorted(product_id for product_id in quantities if not products[product_id].orderable)
    if not_selling:
        raise ProductNotOrderable("Some products are not on sale.", details={"product_ids": not_selling})

    gross_price = sum(products[product_id].price * quantity for product_id, quantity in quantities.items())
    if gross_price > MAX_ORDER_PRICE:
        raise ApplicationError(f"An order's price may not exceed {MAX_ORDER_PRICE:,} won.", code="validation_error")
    discount_price = 0
    if user_coupon_id is not None:
        coupon = usable_coupon_for_order(user_coupon_id=user_coupon_id, user_id=user_id)
        discount_price = discount_for(gross_price, coupon.discount_rate)
    if gross_price - discount_price <= 0:
        raise ApplicationError("The order's total after discount must be greater than 0.", code="validation_error")
    return PricedOrder(
        quantities=dict(sorted(quantities.items())),
        unit_prices={product_id: products[product_id].price for product_id in quantities},
        gross_price=gross_price,
        discount_price=discount_price,
    )


def order_create(*, user_id: int, lines: list[OrderLineInput], user_coupon_id: int | None = None) -> Order:
    """Price the order, save it CREATED and publish OrderCreated in one transaction. The steps of the
    participants it concerns (common.participants) decide the rest after commit."""
    priced = order_price(user_id=user_id, lines=lines, user_coupon_id=user_coupon_id)
    with transaction.atomic():
        order = Order(
            user_id=user_id,
            user_coupon_id=user_coupon_id,
            gross_price=priced.gross_price,
            discount_price=priced.discount_price,
            total_price=priced.total_price,
        )
        order.participants = list(participants_of(order))
        order.save(force_insert=True)
        items = OrderItem.objects.bulk_create(
            OrderItem(order=order, product_id=product_id, quantity=quantity, unit_price=priced.unit_prices[product_id])
            for product_id, quantity in priced.quantities.items()
        )
        publish(order_created_event(order, items))
        order_placed(order_id=order.pk, total_price=order.total_price)
    order.created_items = items  # what the API answers with, without reading it back
    return order
