"""The balance app's part of docs/design.md §5.1 (money), and what its tables say of an order.

Found by apps.orders.consistency through common.app_hooks, like every app's invariants.py."""

from collections import Counter, defaultdict
from datetime import datetime

from django.db.models import BigIntegerField, Case, F, Sum, When

from apps.balance.models import Balance, BalanceStep, BalanceTransaction, TransactionKind
from apps.orders.facts import Orders, Scope, at_rest, of_orders, within


def check(scope: Scope) -> list[str]:
    return _balances(scope.users) + _order_ledgers(scope.orders)


def evidence(order_id: int) -> dict[str, list]:
    return {
        "steps": list(BalanceStep.objects.filter(order_id=order_id).values()),
        "ledger": list(BalanceTransaction.objects.filter(order_id=order_id).order_by("pk").values()),
    }


def _balances(users: frozenset[int] | None) -> list[str]:
    """Each balance is never negative and equals the sum of its user's ledger (at every commit: the
    ledger row is written in the transaction that moves the balance)."""
    signed = Case(
        When(kind=TransactionKind.USE, then=-F("amount")), default=F("amount"), output_field=BigIntegerField()
    )
    entries = within(BalanceTransaction.objects.order_by(), "user_id", users)
    ledger = dict(entries.values_list("user_id").annotate(total=Sum(signed)))
    found = []
    for user_id, amount in within(Balance.objects, "user_id", users).values_list("user_id", "amount"):
        if amount < 0:
            found.append(f"user {user_id} has a negative balance")
        if amount != ledger.get(user_id, 0):
            found.append(f"user {user_id}: balance {amount} != ledger {ledger.get(user_id, 0)}")
    return found


def _order_ledgers(orders: Orders) -> list[str]:
    """Each order's uses and refunds, as its status says they must be, once it is at rest."""
    orders = at_rest(orders)
    by_order: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for order_id, kind, amount in of_orders(BalanceTransaction.objects, orders).values_list(
        "order_id", "kind", "amount"
    ):
        by_order[order_id].append((kind, amount))
    found = []
    for order_id, order in orders.items():
        rows = by_order.get(order_id, [])
        kinds = Counter(kind for kind, _ in rows)
        uses = [amount for kind, amount in rows if kind == TransactionKind.USE]
        refunds = [amount for kind, amount in rows if kind == TransactionKind.REFUND]
        total = order.total_price
        if order.completed and (uses != [total] or refunds):
            found.append(f"completed order {order_id}: uses {uses}, refunds {refunds}, total {total}")
        if order.failed and uses != refunds:
            found.append(f"failed order {order_id}: uses {uses} but refunds {refunds}")
        if order.canceled and (uses != [total] or refunds != uses):
            found.append(f"canceled order {order_id}: uses {uses}, refunds {refunds}, total {total}")
        if kinds[TransactionKind.USE] > 1 or kinds[TransactionKind.REFUND] > 1:
            found.append(f"order {order_id}: ledger kinds {dict(kinds)}")
    return found


def touched(since: datetime, orders: Orders) -> dict[str, set[int]]:
    """The users whose ledger moved since then (charges included)."""
    recent = BalanceTransaction.objects.filter(created_at__gte=since).order_by()
    return {"users": set(recent.values_list("user_id", flat=True).distinct())}
