"""Reads the coupons app offers: to the API and, for order creation, to the orders app."""

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import QuerySet
from django.utils import timezone

from apps.coupons.errors import CouponNotUsable
from apps.coupons.models import UserCoupon, UserCouponStatus


@dataclass(frozen=True)
class CouponForOrder:
    user_coupon_id: int
    discount_rate: Decimal


def usable_coupon_for_order(*, user_coupon_id: int, user_id: int) -> CouponForOrder:
    """The discount of a coupon the user may use now; raises CouponNotUsable otherwise."""
    user_coupon = UserCoupon.objects.select_related("coupon").filter(pk=user_coupon_id, user_id=user_id).first()
    if user_coupon is None:
        raise CouponNotUsable(f"You hold no coupon {user_coupon_id}.")
    if user_coupon.status != UserCouponStatus.UNUSED:
        raise CouponNotUsable("This coupon was already used.")
    if user_coupon.coupon.expires_at <= timezone.now():
        raise CouponNotUsable("This coupon has expired.")
    return CouponForOrder(user_coupon_id=user_coupon.pk, discount_rate=user_coupon.coupon.discount_rate)


def coupons_of(*, user_id: int) -> QuerySet[UserCoupon]:
    return UserCoupon.objects.filter(user_id=user_id).select_related("coupon").order_by("-issued_at", "-id")
