"""The coupons app's part of docs/design.md §5.3, and what its tables say of an order.

Found by apps.orders.consistency through common.app_hooks, like every app's invariants.py."""

from collections import defaultdict

from django.db.models import Count

from apps.coupons.models import Coupon, CouponStep, UserCoupon, UserCouponStatus
from apps.orders.facts import Orders


def check(orders: Orders) -> list[str]:
    return _issued() + _uses(orders)


def evidence(order_id: int) -> dict[str, list]:
    return {
        "steps": list(CouponStep.objects.filter(order_id=order_id).values()),
        "user_coupons": list(UserCoupon.objects.filter(used_by_order_id=order_id).values()),
    }


def _issued() -> list[str]:
    """A coupon is never issued beyond its quantity, and its counter counts its user coupons."""
    found = []
    coupons = Coupon.objects.annotate(issued_rows=Count("issued")).values_list(
        "pk", "issued_rows", "issued_count", "quantity"
    )
    for coupon_id, issued, counter, quantity in coupons:
        if issued != counter or issued > quantity:
            found.append(f"coupon {coupon_id}: {issued} issued, counter {counter}, quantity {quantity}")
    return found


def _uses(orders: Orders) -> list[str]:
    """A user coupon is used by at most one live order (neither FAILED nor CANCELED), and it is USED, by
    that order, if and only if that order exists."""
    live_holders: dict[int, list[int]] = defaultdict(list)
    for order_id, order in orders.items():
        if order.user_coupon_id is not None and not order.given_back:
            live_holders[order.user_coupon_id].append(order_id)
    found = []
    for user_coupon_id, status, used_by in UserCoupon.objects.values_list("pk", "status", "used_by_order_id"):
        holders = sorted(live_holders.get(user_coupon_id, []))
        named = ", ".join(f"order {order_id}" for order_id in holders) or "none"
        if len(holders) > 1:
            found.append(f"user coupon {user_coupon_id} used by {len(holders)} live orders: {named}")
        used = status == UserCouponStatus.USED
        if used != bool(holders) or (used and holders[0] != used_by):
            by = f" by order {used_by}" if used_by is not None else ""
            found.append(f"user coupon {user_coupon_id} is {status}{by}, live orders: {named}")
    return found
