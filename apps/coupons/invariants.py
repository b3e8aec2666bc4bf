"""The coupons app's part of docs/design.md §5.3, and what its tables say of an order.

Found by apps.orders.consistency through common.app_hooks, like every app's invariants.py."""

from collections import defaultdict
from datetime import datetime

from django.db.models import Count, Q

from apps.coupons.models import Coupon, CouponStep, UserCoupon, UserCouponStatus
from apps.orders.facts import Orders, Scope, within


def check(scope: Scope) -> list[str]:
    return _issued(scope.coupons) + _uses(scope)


def evidence(order_id: int) -> dict[str, list]:
    return {
        "steps": list(CouponStep.objects.filter(order_id=order_id).values()),
        "user_coupons": list(UserCoupon.objects.filter(used_by_order_id=order_id).values()),
    }


def _issued(coupons: frozenset[int] | None) -> list[str]:
    """A coupon is never issued beyond its quantity, and its counter counts its user coupons."""
    found = []
    coupons = (
        within(Coupon.objects, "pk", coupons)
        .annotate(issued_rows=Count("issued"))
        .values_list("pk", "issued_rows", "issued_count", "quantity")
    )
    for coupon_id, issued, counter, quantity in coupons:
        if issued != counter or issued > quantity:
            found.append(f"coupon {coupon_id}: {issued} issued, counter {counter}, quantity {quantity}")
    return found


def _uses(scope: Scope) -> list[str]:
    """A user coupon is used by at most one live order (neither FAILED nor CANCELED), and it is USED, by
    that order, if and only if that order exists. While orders run, judged once every order of the scope
    naming it is at rest (an order in flight may not have taken it yet, or given it back) and the order
    that holds it is in the scope."""
    live_holders: dict[int, list[int]] = defaultdict(list)
    moving: set[int] = set()
    for order_id, order in scope.orders.items():
        if order.user_coupon_id is None:
            continue
        if not order.at_rest and not scope.everything:
            moving.add(order.user_coupon_id)
        if not order.given_back:
            live_holders[order.user_coupon_id].append(order_id)
    user_coupons = UserCoupon.objects.all()
    if not scope.everything:
        named = {order.user_coupon_id for order in scope.orders.values()} - {None} - moving
        user_coupons = user_coupons.filter(pk__in=named)
    found = []
    for user_coupon_id, status, used_by in user_coupons.values_list("pk", "status", "used_by_order_id"):
        if not scope.everything and used_by is not None and used_by not in scope.orders:
            continue  # its holder is outside the scope: the scope cannot say who else holds it
        holders = sorted(live_holders.get(user_coupon_id, []))
        named = ", ".join(f"order {order_id}" for order_id in holders) or "none"
        if len(holders) > 1:
            found.append(f"user coupon {user_coupon_id} used by {len(holders)} live orders: {named}")
        used = status == UserCouponStatus.USED
        if used != bool(holders) or (used and holders[0] != used_by):
            by = f" by order {used_by}" if used_by is not None else ""
            found.append(f"user coupon {user_coupon_id} is {status}{by}, live orders: {named}")
    return found


def touched(since: datetime, orders: Orders) -> dict[str, set[int]]:
    """The coupons of those orders' user coupons, and those issued since then."""
    named = {order.user_coupon_id for order in orders.values()} - {None}
    user_coupons = UserCoupon.objects.filter(Q(pk__in=named) | Q(issued_at__gte=since)).order_by()
    return {"coupons": set(user_coupons.values_list("coupon_id", flat=True).distinct())}
