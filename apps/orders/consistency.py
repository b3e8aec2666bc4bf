"""The invariants of docs/design.md §5, checked from the database: every installed app's invariants.py
(common.app_hooks), this app's included, over the facts of every order, and the orders app's count of
decisions (§5.4).

An app's `invariants.py` may provide, each optional:

    check(scope: apps.orders.facts.Scope) -> list[str]   # its broken invariants in scope, as readable
                                                        # lines naming `order N`, `user N`, `product N`...
    evidence(order_id: int) -> dict[str, list]          # what its own tables say of that order
    touched(since: datetime, orders: Orders) -> dict[str, Iterable[int]]
                                # for the monitor: the users, products or coupons ("users", "products",
                                # "coupons") it saw change since then, or that those orders name

The tests, the chaos run and the benchmark call `violations` after a run has settled, over everything;
the consistency monitor (apps.orders.monitor) calls it every minute over what changed recently, while
orders are in flight. Either way the checks read one snapshot of the database.
"""

import sys
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from apps.orders.facts import OrderFacts, Scope
from apps.orders.invariants import check_decisions
from apps.orders.models import Order, OrderItem, OrderStatus, taking_part
from common.app_hooks import app_modules
from eventbus.models import OutboxMessage


def violations(
    published_events: Iterable[Any] | None = None, *, decisions: bool = True, scope: Scope | None = None
) -> list[str]:
    """Every invariant broken in `scope` (by default everything, the run settled), as readable lines.
    Decisions (§5.4) are counted from `published_events` if given, else from the event history;
    `decisions=False` leaves them out, for orders written without events (the monolith reference in
    bench/)."""
    with snapshot():
        scope = scope or Scope(orders=order_facts())
        found = [line for _, check in hooks("check") for line in check(scope)]
        if decisions:
            found += check_decisions(scope, published_events)
    return found


def snapshot():
    """A read-only transaction that sees one snapshot: a balance and its ledger read a moment apart
    would disagree while orders run. Inside a caller's transaction (a test's) the caller's view is used."""
    if transaction.get_connection().in_atomic_block:
        return transaction.atomic()
    return _repeatable_read()


class _repeatable_read(transaction.Atomic):
    def __init__(self):
        super().__init__(using=None, savepoint=False, durable=False)

    def __enter__(self):
        super().__enter__()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        except BaseException:
            # Leave the block as a failed one, or the connection stays in it for every later task.
            self.__exit__(*sys.exc_info())
            raise


def order_evidence(order_id: int) -> dict[str, dict[str, list]]:
    """What each app's tables say of an order, by app label."""
    return {label: evidence(order_id) for label, evidence in hooks("evidence")}


def order_facts(
    order_ids: Iterable[int] | None = None, *, at_rest_before: datetime | None = None
) -> dict[int, OrderFacts]:
    """The orders named (every order by default), as the other apps' checks see them: a few queries,
    whatever their number. A settled order is at rest at once; or, when `at_rest_before` is given (the
    monitor, while orders run), once it settled before then and none of its listeners is still to run
    (an outbox row neither handled nor parked: a compensation waiting its retry, a backlog). A parked
    row leaves the order at rest: what it did not do is a finding."""
    items = OrderItem.objects.all()
    orders = Order.objects.all()
    if order_ids is not None:
        order_ids = list(order_ids)
        items, orders = items.filter(order_id__in=order_ids), orders.filter(pk__in=order_ids)
    units: dict[int, dict[int, int]] = defaultdict(dict)
    for order_id, product_id, quantity in items.values_list("order_id", "product_id", "quantity"):
        units[order_id][product_id] = quantity
    rows = orders.values_list(
        "pk", "user_id", "status", "total_price", "user_coupon_id", "participants", "created_at", *_SETTLED_AT.values()
    )
    moving = _with_listeners_to_run(order_ids) if at_rest_before is not None else set()
    facts = {}
    for order_id, user_id, status, total, user_coupon_id, participants, created_at, *settled_at in rows:
        settled_at = dict(zip(_SETTLED_AT, settled_at, strict=True)).get(status)
        facts[order_id] = OrderFacts(
            status=status,
            user_id=user_id,
            total_price=total,
            user_coupon_id=user_coupon_id,
            units=units[order_id],
            participants=taking_part(participants, user_coupon_id=user_coupon_id),
            created_at=created_at,
            at_rest=status in _SETTLED_AT
            and (at_rest_before is None or ((settled_at or created_at) < at_rest_before and order_id not in moving)),
        )
    return facts


def _with_listeners_to_run(order_ids: list[int] | None) -> set[int]:
    waiting = OutboxMessage.objects.filter(handled_at=None, parked_at=None).exclude(order_id=None)
    if order_ids is not None:
        waiting = waiting.filter(order_id__in=order_ids)
    return set(waiting.values_list("order_id", flat=True).distinct())


# When an order of each final status settled.
_SETTLED_AT = {
    OrderStatus.COMPLETED: "completed_at",
    OrderStatus.FAILED: "failed_at",
    OrderStatus.CANCELED: "canceled_at",
}


def hooks(name: str) -> list[tuple[str, Callable]]:
    """(app label, function) for every installed app whose invariants.py defines `name`."""
    return [
        (config.label, getattr(module, name)) for config, module in app_modules("invariants") if hasattr(module, name)
    ]
