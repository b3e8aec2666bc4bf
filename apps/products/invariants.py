"""The products app's part of docs/design.md §5.2 (stock), and what its tables say of an order.

Found by apps.orders.consistency through common.app_hooks, like every app's invariants.py."""

from collections import defaultdict

from django.db.models import Sum

from apps.orders.facts import Orders
from apps.products.models import MovementKind, Stock, StockMovement, StockStep


def check(orders: Orders) -> list[str]:
    return _stock_levels(orders) + _order_movements(orders)


def evidence(order_id: int) -> dict[str, list]:
    return {
        "steps": list(StockStep.objects.filter(order_id=order_id).values()),
        "movements": list(StockMovement.objects.filter(order_id=order_id).order_by("pk").values()),
    }


def _stock_levels(orders: Orders) -> list[str]:
    """Each product's stock is never negative, equals its ledger, and equals the units added less the
    units of completed orders (the run has settled: no order holds units in flight)."""
    movements = StockMovement.objects.order_by()
    ledger = dict(movements.values_list("product_id").annotate(total=Sum("delta")))
    added = dict(movements.filter(kind=MovementKind.ADD).values_list("product_id").annotate(total=Sum("delta")))
    sold: dict[int, int] = defaultdict(int)
    for order in orders.values():
        if order.completed:
            for product_id, units in order.units.items():
                sold[product_id] += units
    found = []
    for product_id, quantity in Stock.objects.values_list("product_id", "quantity"):
        if quantity < 0:
            found.append(f"product {product_id} has negative stock")
        if quantity != ledger.get(product_id, 0):
            found.append(f"product {product_id}: stock {quantity} != ledger {ledger.get(product_id, 0)}")
        expected = added.get(product_id, 0) - sold[product_id]
        if quantity != expected:
            found.append(f"product {product_id}: stock {quantity} != added − sold = {expected}")
    return found


def _order_movements(orders: Orders) -> list[str]:
    """A completed order took its units; a failed or cancelled one holds none once compensated."""
    net_by_order = dict(
        StockMovement.objects.exclude(order_id=None).order_by().values_list("order_id").annotate(total=Sum("delta"))
    )
    found = []
    for order_id, order in orders.items():
        units = sum(order.units.values())
        net = net_by_order.get(order_id, 0)
        if order.given_back and net != 0:
            found.append(f"{order.status.lower()} order {order_id} still holds {-net} units")
        if order.completed and net != -units:
            found.append(f"completed order {order_id} took {-net} units, ordered {units}")
    return found
