from collections.abc import Iterable, Sequence

from django.db.models import QuerySet
from rest_framework import serializers

from apps.orders.models import Order, OrderItem
from apps.orders.process import PENDING, read_steps
from apps.orders.services.saga import order_steps
from apps.payments.selectors import payment_summaries
from common.errors import NotFound
from common.participants import step_names


def _with_items() -> QuerySet[Order]:
    return Order.objects.prefetch_related("items").order_by("-created_at", "-id")


def orders_of(user) -> QuerySet[Order]:
    """The caller's own orders, newest first (staff too: the list is "my orders")."""
    return _with_items().filter(user=user)


def order_visible_to(user, order_id: int) -> Order:
    """An order of the caller (any order for staff); someone else's order is simply not found."""
    orders = _with_items() if user.is_staff else orders_of(user)
    order = orders.filter(pk=order_id).first()
    if order is None:
        raise NotFound(f"Order {order_id} does not exist.")
    return order


_timestamp = serializers.DateTimeField()  # the API's one format for times, as every serializer uses


def order_views(orders: Sequence[Order]) -> list[dict]:
    """The orders as docs/api.md shows them: live steps from Redis (one round trip for all), payments from
    the payments app (one query for all)."""
    live = read_steps([order.pk for order in orders if order.steps is None])
    payments = payment_summaries(order_ids=[order.pk for order in orders])
    return [
        order_view(
            order, items=order.items.all(), steps=order_steps(order, live.get(order.pk)), payment=payments.get(order.pk)
        )
        for order in orders
    ]


def new_order_view(order: Order) -> dict:
    """A just-created order, without reading back what its creation just wrote: no step has reported
    and there is no payment yet."""
    return order_view(
        order, items=order.created_items, steps=order_steps(order, dict.fromkeys(step_names(), PENDING)), payment=None
    )


def order_view(order: Order, *, items: Iterable[OrderItem], steps: dict[str, str], payment: dict | None) -> dict:
    return {
        "id": order.pk,
        "user_id": order.user_id,
        "status": order.status,
        "failure_reason": order.failure_reason or None,
        "items": [{"product_id": i.product_id, "quantity": i.quantity, "unit_price": i.unit_price} for i in items],
        "user_coupon_id": order.user_coupon_id,
        "gross_price": order.gross_price,
        "discount_price": order.discount_price,
        "total_price": order.total_price,
        "steps": steps,
        "payment": payment,
        "created_at": _timestamp.to_representation(order.created_at),
        "completed_at": order.completed_at and _timestamp.to_representation(order.completed_at),
        "canceled_at": order.canceled_at and _timestamp.to_representation(order.canceled_at),
    }
