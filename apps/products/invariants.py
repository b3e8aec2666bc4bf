"""The products app's part of docs/design.md §5.2 (stock), the daily rank against PostgreSQL, and what its
tables say of an order.

Found by apps.orders.consistency through common.app_hooks, like every app's invariants.py."""

from collections import defaultdict
from datetime import datetime
from functools import partial

import structlog
from django.db import transaction
from django.db.models import Sum
from redis.exceptions import RedisError

from apps.orders.facts import Orders, Scope, at_rest, of_orders, within
from apps.products.models import MovementKind, Stock, StockMovement, StockStep
from apps.products.rank import days_named, rank_drift, rank_drift_of_orders, rank_rebuild, rank_restore_lost

logger = structlog.get_logger(__name__)


def check(scope: Scope) -> list[str]:
    return _stock_levels(scope) + _order_movements(scope.orders) + _rank(scope)


def evidence(order_id: int) -> dict[str, list]:
    return {
        "steps": list(StockStep.objects.filter(order_id=order_id).values()),
        "movements": list(StockMovement.objects.filter(order_id=order_id).order_by("pk").values()),
    }


def _stock_levels(scope: Scope) -> list[str]:
    """Each product's stock is never negative and equals its ledger (at every commit: the movement is
    written in the transaction that moves the stock). Over everything, it also equals the units added
    less the units of completed orders and those held by orders not at rest (§5.2)."""
    movements = within(StockMovement.objects.order_by(), "product_id", scope.products)
    ledger = dict(movements.values_list("product_id").annotate(total=Sum("delta")))
    expected = _added_less_sold(movements, scope.orders) if scope.products is None else {}
    found = []
    for product_id, quantity in within(Stock.objects, "product_id", scope.products).values_list(
        "product_id", "quantity"
    ):
        if quantity < 0:
            found.append(f"product {product_id} has negative stock")
        if quantity != ledger.get(product_id, 0):
            found.append(f"product {product_id}: stock {quantity} != ledger {ledger.get(product_id, 0)}")
        if scope.products is None and quantity != expected.get(product_id, 0):
            found.append(
                f"product {product_id}: stock {quantity} != added − sold − held = {expected.get(product_id, 0)}"
            )
    return found


def _added_less_sold(movements, orders: Orders) -> dict[int, int]:
    """Per product: units added, less those of orders completed at rest, less those held by orders not at
    rest (what their stock steps took and no compensation gave back yet)."""
    expected: dict[int, int] = defaultdict(int)
    for product_id, added in (
        movements.filter(kind=MovementKind.ADD).values_list("product_id").annotate(total=Sum("delta"))
    ):
        expected[product_id] += added
    for order in orders.values():
        if order.at_rest and order.completed:
            for product_id, units in order.units.items():
                expected[product_id] -= units
    for order_id, product_id, net in (
        movements.exclude(order_id=None).values_list("order_id", "product_id").annotate(total=Sum("delta"))
    ):
        order = orders.get(order_id)
        if order is None or not order.at_rest:
            expected[product_id] += net
    return expected


def _order_movements(orders: Orders) -> list[str]:
    """A completed order took its units; a failed or cancelled one holds none once compensated."""
    orders = at_rest(orders)
    net_by_order = dict(
        of_orders(StockMovement.objects.order_by(), orders).values_list("order_id").annotate(total=Sum("delta"))
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


def touched(since: datetime, orders: Orders) -> dict[str, set[int]]:
    """The products whose stock moved since then (an operator's additions included)."""
    return {"products": set(Stock.objects.filter(updated_at__gte=since).values_list("product_id", flat=True))}


def _rank(scope: Scope) -> list[str]:
    """The daily rank is a read model of PostgreSQL (apps.products.rank): a day Redis lost is rebuilt, not
    reported; a day it holds must agree. Over everything, no order runs: a lost day is rebuilt here and
    every product's units compared. While orders run, this check's snapshot is older than Redis: a lost
    day is rebuilt once the snapshot ends, and only the orders at rest are looked at."""
    if scope.everything:
        return rank_drift(rebuild_lost=True)
    transaction.on_commit(rank_restore_lost, robust=True)
    try:
        found = rank_drift_of_orders(
            order_id for order_id, order in at_rest(scope.orders).items() if order.completed or order.canceled
        )
    except RedisError:  # the rank is Redis's: unreachable, it cannot be compared, and the rest is still checked
        logger.warning("rank_not_checked", reason="Redis is unreachable")
        return []
    # A day that drifted (a Redis restored from an older snapshot, keys evicted) is merged with PostgreSQL
    # again, as a lost day is: the finding stays for the operator, the popular list is right again.
    for day in days_named(found):
        transaction.on_commit(partial(rank_rebuild, day), robust=True)
    return found
