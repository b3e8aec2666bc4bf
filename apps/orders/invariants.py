"""The orders app's part of docs/design.md §5: every order settles (§5.5), and each is decided exactly
once (§5.4), counted from the decision events. See apps.orders.consistency for how the checks are run."""

from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.orders.events import OrderCanceled, OrderFailed, OrderPaymentWaited
from apps.orders.facts import Orders, Scope, at_rest, of_orders
from apps.orders.models import Order, OrderItem
from eventbus.models import EventRecord

WAITED, FAILED, CANCELED = OrderPaymentWaited.event_type(), OrderFailed.event_type(), OrderCanceled.event_type()
DECISION_EVENTS = (WAITED, FAILED, CANCELED)


def check(scope: Scope) -> list[str]:
    return [
        f"order {order_id} is still {order.status}" for order_id, order in scope.orders.items() if scope.overdue(order)
    ]


def evidence(order_id: int) -> dict[str, list]:
    return {
        "order": list(Order.objects.filter(pk=order_id).values()),
        "items": list(OrderItem.objects.filter(order_id=order_id).values()),
    }


def check_decisions(scope: Scope, published_events: Iterable[Any] | None = None) -> list[str]:
    """§5.4, from the events a test saw published, or else from the event history. An order is judged
    once at rest: a decision of an order in flight may still be coming."""
    orders = at_rest(scope.orders)
    if published_events is None:
        # The history keeps EVENT_HISTORY_RETENTION_DAYS: an older order's decisions may be gone.
        kept_since = timezone.now() - timedelta(days=settings.EVENT_HISTORY_RETENTION_DAYS)
        orders = {order_id: order for order_id, order in orders.items() if order.created_at >= kept_since}
    decisions = _decision_events(orders, published_events)
    waited = Counter(order_id for event_type, order_id in decisions if event_type == WAITED)
    failed = Counter(order_id for event_type, order_id in decisions if event_type == FAILED)
    canceled = Counter(order_id for event_type, order_id in decisions if event_type == CANCELED)
    found = []
    for order_id, order in orders.items():
        if waited[order_id] > 1 or failed[order_id] > 1 or canceled[order_id] > 1:
            found.append(
                f"order {order_id}: {waited[order_id]} OrderPaymentWaited, {failed[order_id]} OrderFailed, "
                f"{canceled[order_id]} OrderCanceled"
            )
        paid_for = order.completed or order.canceled
        if paid_for and (waited[order_id], failed[order_id]) != (1, 0):
            found.append(f"{order.status.lower()} order {order_id}: decisions {waited[order_id]}/{failed[order_id]}")
        if order.canceled != (canceled[order_id] == 1):
            found.append(f"{order.status.lower()} order {order_id}: {canceled[order_id]} OrderCanceled")
        if order.failed and failed[order_id] != 1:
            found.append(f"failed order {order_id}: {failed[order_id]} OrderFailed")
    return found


def _decision_events(orders: Orders, published_events: Iterable[Any] | None) -> list[tuple[str, int]]:
    """(event type, order id) of every OrderPaymentWaited, OrderFailed and OrderCanceled of `orders`."""
    if published_events is not None:
        return [(type(e).__name__, e.order_id) for e in published_events if type(e).__name__ in DECISION_EVENTS]
    history = of_orders(EventRecord.objects.filter(event_type__in=DECISION_EVENTS), orders)
    return list(history.values_list("event_type", "order_id"))
