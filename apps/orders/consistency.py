"""The invariants of docs/design.md §5, checked from the database: every installed app's invariants.py
(common.app_hooks), this app's included, over the facts of every order, and the orders app's count of
decisions (§5.4).

An app's `invariants.py` may provide, each optional:

    check(orders: apps.orders.facts.Orders) -> list[str]   # its broken invariants, as readable lines
                                                          # naming `order N`, `user N` or `product N`
    evidence(order_id: int) -> dict[str, list]            # what its own tables say of that order

The tests, the chaos run and the benchmark call `violations` after a run has settled.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from apps.orders.facts import OrderFacts
from apps.orders.invariants import check_decisions
from apps.orders.models import Order, OrderItem, taking_part
from common.app_hooks import app_modules


def violations(published_events: Iterable[Any] | None = None, *, decisions: bool = True) -> list[str]:
    """Every invariant broken, as readable lines. Decisions (§5.4) are counted from `published_events`
    if given, else from the outbox; `decisions=False` leaves them out, for orders written without events
    (the monolith reference in bench/)."""
    orders = order_facts()
    found = [line for _, check in _hooks("check") for line in check(orders)]
    if decisions:
        found += check_decisions(orders, published_events)
    return found


def order_evidence(order_id: int) -> dict[str, dict[str, list]]:
    """What each app's tables say of an order, by app label."""
    return {label: evidence(order_id) for label, evidence in _hooks("evidence")}


def order_facts() -> dict[int, OrderFacts]:
    """Every order, as the other apps' checks see it: two queries, whatever the number of orders."""
    units: dict[int, dict[int, int]] = defaultdict(dict)
    for order_id, product_id, quantity in OrderItem.objects.values_list("order_id", "product_id", "quantity"):
        units[order_id][product_id] = quantity
    rows = Order.objects.values_list("pk", "status", "total_price", "user_coupon_id", "participants")
    return {
        order_id: OrderFacts(
            status=status,
            total_price=total,
            user_coupon_id=user_coupon_id,
            units=units[order_id],
            participants=taking_part(participants, user_coupon_id=user_coupon_id),
        )
        for order_id, status, total, user_coupon_id, participants in rows
    }


def _hooks(name: str) -> list[tuple[str, Callable]]:
    """(app label, function) for every installed app whose invariants.py defines `name`."""
    return [
        (config.label, getattr(module, name)) for config, module in app_modules("invariants") if hasattr(module, name)
    ]
