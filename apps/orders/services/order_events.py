"""The order's events as the saga publishes them, built from the order in one place each: the monolith
reference (bench/) hands the same events to the participants' effects."""

from collections.abc import Iterable

from apps.orders.events import OrderCompleted, OrderCreated, OrderLine
from apps.orders.models import Order, OrderItem


def lines_of(items: Iterable[OrderItem]) -> tuple[OrderLine, ...]:
    """The order's items as events carry them."""
    return tuple(OrderLine(item.product_id, item.quantity, item.unit_price) for item in items)


def order_created_event(order: Order, items: Iterable[OrderItem]) -> OrderCreated:
    return OrderCreated(
        order_id=order.pk,
        user_id=order.user_id,
        user_coupon_id=order.user_coupon_id,
        items=lines_of(items),
        total_price=order.total_price,
        discount_price=order.discount_price,
        participants=order.taking_part,
    )


def order_completed_event(order: Order, items: Iterable[OrderItem]) -> OrderCompleted:
    return OrderCompleted(
        order_id=order.pk,
        user_id=order.user_id,
        items=lines_of(items),
        gross_price=order.gross_price,
        discount_price=order.discount_price,
        total_price=order.total_price,
        user_coupon_id=order.user_coupon_id,
        created_at=order.created_at,
        completed_at=order.completed_at,
        participants=order.taking_part,
    )
