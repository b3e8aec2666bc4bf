"""The consistency monitor (docs/design.md §7): every minute, on beat and the maintenance queue, the
invariants of §5 over what changed recently, while orders run. The checks are the tests' and the chaos
run's (apps.orders.consistency); what differs is the scope:

- the orders with an event in the last CONSISTENCY_MONITOR_WINDOW_SECONDS, and every order past its
  deadline (§5.5);
- the users, products and coupons those orders touched, and those each app saw change in the window
  (its invariants.py's `touched(since, orders) -> {"users" | "products" | "coupons": ids}`);
- an order's own effects once it is at rest: settled CONSISTENCY_SETTLE_SECONDS ago, time for its
  compensations to have run. Until then only what holds at every commit is checked.

Each finding is kept as an InvariantViolation (listed in admin, counted in `saga_invariant_violations`)
and logged as an ERROR with the ids it names, the first time it is seen.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.orders.consistency import hooks, order_facts, snapshot, violations
from apps.orders.facts import Scope
from apps.orders.models import InvariantViolation, Order, OrderStatus
from eventbus.models import EventRecord

logger = structlog.get_logger(__name__)


@dataclass(frozen=True)
class MonitorRun:
    orders: int  # the orders in scope
    found: int  # the violations found
    new: int  # of which first seen now


def consistency_monitor(now: datetime | None = None) -> MonitorRun:
    """Check §5 over the recent scope and keep what is broken."""
    now = now or timezone.now()
    with snapshot():
        scope = recent_scope(now)
        found = violations(scope=scope)
    new = record_violations(found, now)
    for description in new:
        logger.error("invariant_violated", violation=description, **ids_named(description))
    return MonitorRun(orders=len(scope.orders), found=len(found), new=len(new))


def recent_scope(now: datetime) -> Scope:
    """The orders with an event in the window or past their deadline, and what they or the apps' own
    recent changes touched (each app's `invariants.touched`)."""
    since = now - timedelta(seconds=settings.CONSISTENCY_MONITOR_WINDOW_SECONDS)
    # §5.5 allows the deadline plus a sweep; the margin lets that sweep's work commit.
    overdue_after = settings.SAGA_DEADLINE_SECONDS + settings.SAGA_SWEEP_INTERVAL_SECONDS
    overdue_before = now - timedelta(seconds=overdue_after + settings.CONSISTENCY_SETTLE_SECONDS)
    touched = EventRecord.objects.filter(occurred_at__gte=since).exclude(order_id=None)
    overdue = Order.objects.filter(
        status__in=(OrderStatus.CREATED, OrderStatus.PAYMENT_WAITING), created_at__lt=overdue_before
    )
    order_ids = set(touched.values_list("order_id", flat=True).distinct()) | set(overdue.values_list("pk", flat=True))
    orders = order_facts(order_ids, at_rest_before=now - timedelta(seconds=settings.CONSISTENCY_SETTLE_SECONDS))
    named = {
        "users": {order.user_id for order in orders.values()},
        "products": {product_id for order in orders.values() for product_id in order.units},
        "coupons": set(),
    }
    for _, touched_by_app in hooks("touched"):
        for kind, ids in touched_by_app(since, orders).items():
            named[kind].update(ids)
    return Scope(
        orders=orders,
        **{kind: frozenset(ids) for kind, ids in named.items()},
        overdue_before=overdue_before,
    )


# One statement per run: a finding already open (by its key) is seen again and reads as now, a new one
# is inserted.
RECORD = """
INSERT INTO orders_invariantviolation
    (description, key, order_id, user_id, product_id, first_seen_at, last_seen_at, times_seen, resolved_by)
SELECT description, key, order_id, user_id, product_id, %(now)s, %(now)s, 1, ''
  FROM unnest(%(descriptions)s::text[], %(keys)s::text[], %(order_ids)s::bigint[], %(user_ids)s::bigint[],
              %(product_ids)s::bigint[])
       AS found(description, key, order_id, user_id, product_id)
ON CONFLICT (key) WHERE resolved_at IS NULL
DO UPDATE SET description = EXCLUDED.description, last_seen_at = EXCLUDED.last_seen_at,
              times_seen = orders_invariantviolation.times_seen + 1
RETURNING description, xmax = 0 AS inserted
"""


def record_violations(found: list[str], now: datetime) -> list[str]:
    """Keep each finding; return those seen for the first time (no open row of them before)."""
    by_key = {finding_key(description): description for description in sorted(set(found))}
    if not by_key:
        return []
    ids = [ids_named(description) for description in by_key.values()]
    with connection.cursor() as cursor:
        cursor.execute(
            RECORD,
            {
                "now": now,
                "descriptions": list(by_key.values()),
                "keys": list(by_key),
                "order_ids": [named.get("order_id") for named in ids],
                "user_ids": [named.get("user_id") for named in ids],
                "product_ids": [named.get("product_id") for named in ids],
            },
        )
        return [description for description, inserted in cursor.fetchall() if inserted]


_FIGURE = re.compile(r"\b(?:order|user|product|coupon|payment|rank) \d+|-?\d+")


def finding_key(description: str) -> str:
    """A finding's identity: its words and the ids it names, its other figures left out
    ("product 3: stock 97 != ledger 95" → "product 3: stock # != ledger #")."""
    return _FIGURE.sub(lambda match: match.group(0) if not match.group(0).lstrip("-").isdigit() else "#", description)


def open_violations() -> int:
    return InvariantViolation.objects.filter(resolved_at=None).count()


_NAMED = re.compile(r"\b(order|user|product) (\d+)")


def ids_named(description: str) -> dict[str, int]:
    """The first order, user and product a finding names ("failed order 7: uses [...]" → order_id 7)."""
    named: dict[str, int] = {}
    for kind, number in _NAMED.findall(description):
        named.setdefault(f"{kind}_id", int(number))
    return named


def violations_resolve(*, violation_ids: list[int], by: str, now: datetime | None = None) -> list[int]:
    """An operator marks open findings resolved (the cause fixed, or understood); the monitor opens a new
    row if it finds one again. Returns the ids it closed."""
    closed = InvariantViolation.objects.filter(pk__in=violation_ids, resolved_at=None)
    ids = list(closed.values_list("pk", flat=True))
    closed.filter(pk__in=ids).update(resolved_at=now or timezone.now(), resolved_by=by)
    return ids
