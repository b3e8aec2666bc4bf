"""The loyalty participant's own invariants: its accounts add up to its ledger, and each order's points
went where its status says. Found by apps.orders.consistency like every app's invariants.py, so every
test that checks docs/design.md §5 checks these too."""

from collections import defaultdict

from apps.orders.facts import Scope
from tests.loyalty.models import EntryKind, LoyaltyStep, PointsAccount, PointsEntry

# What each settled order's points ledger must read.
EXPECTED = {
    "COMPLETED": ([EntryKind.RESERVE, EntryKind.EARN],),
    "FAILED": ([], [EntryKind.RESERVE, EntryKind.RELEASE]),
    "CANCELED": ([EntryKind.RESERVE, EntryKind.EARN, EntryKind.REVOKE], [EntryKind.RESERVE, EntryKind.RELEASE]),
}


def check(scope: Scope) -> list[str]:
    found = []
    kinds_by_order = defaultdict(list)
    earned, held = defaultdict(int), defaultdict(int)
    for order_id, user_id, kind, points in PointsEntry.objects.order_by("pk").values_list(
        "order_id", "user_id", "kind", "points"
    ):
        kinds_by_order[order_id].append(kind)
        earned[user_id] += {EntryKind.EARN: points, EntryKind.REVOKE: -points}.get(kind, 0)
        held[user_id] += {EntryKind.RESERVE: points, EntryKind.RELEASE: -points, EntryKind.EARN: -points}.get(kind, 0)
    for account in PointsAccount.objects.all():
        if (account.points, account.reserved) != (earned[account.user_id], held[account.user_id]):
            found.append(f"user {account.user_id}: points {account.points}/{account.reserved} != ledger")
    for order_id, order in scope.orders.items():
        kinds = kinds_by_order.get(order_id, [])
        if order.at_rest and "points" in order.participants and kinds not in EXPECTED[order.status]:
            found.append(f"{order.status.lower()} order {order_id}: points ledger {kinds}")
        if "points" not in order.participants and kinds:
            found.append(f"order {order_id} does not concern the points step but has points {kinds}")
    return found


def evidence(order_id: int) -> dict[str, list]:
    return {
        "steps": list(LoyaltyStep.objects.filter(order_id=order_id).values()),
        "ledger": list(PointsEntry.objects.filter(order_id=order_id).order_by("pk").values()),
    }
