"""The coupons app's part in the order saga (common.participants): it uses the order's coupon, if any."""

from apps.coupons.events import CouponUsed, CouponUseFailed
from apps.coupons.models import CouponStep
from apps.coupons.services import coupon_use_apply
from apps.orders.events import OrderCreated
from common.participants import Participant


def _has_coupon(order) -> bool:
    return order.user_coupon_id is not None


def _use_coupon(order: OrderCreated) -> None:
    coupon_use_apply(order_id=order.order_id, user_coupon_id=order.user_coupon_id, user_id=order.user_id)


PARTICIPANT = Participant(
    step="coupon",
    succeeded=CouponUsed,
    failed=CouponUseFailed,
    record=CouponStep,
    effect=_use_coupon,
    applies=_has_coupon,
)
