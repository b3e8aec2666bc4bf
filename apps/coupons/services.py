from datetime import datetime
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.coupons.errors import CouponAlreadyIssued, CouponNotUsable, CouponSoldOut
from apps.coupons.events import CouponRestored, CouponUsed, CouponUseFailed
from apps.coupons.models import Coupon, CouponStep, UserCoupon, UserCouponStatus
from common.errors import ApplicationError, NotFound
from common.steps import StepOutcome, StepRejected, run_compensation, run_step
from eventbus import publish


def coupon_create(*, name: str, discount_rate: Decimal, quantity: int, expires_at: datetime) -> Coupon:
    discount_rate = Decimal(discount_rate)
    if not Decimal(0) <= discount_rate <= Decimal(1):
        raise ApplicationError("A discount rate must be between 0 and 1.", code="validation_error")
    if quantity < 0:
        raise ApplicationError("A coupon's quantity cannot be negative.", code="validation_error")
    return Coupon.objects.create(name=name, discount_rate=discount_rate, quantity=quantity, expires_at=expires_at)


def coupon_issue(*, coupon_id: int, user_id: int) -> UserCoupon:
    """First come, first served: never more than the coupon's quantity, never two to one user."""
    coupon = Coupon.objects.filter(pk=coupon_id).first()
    if coupon is None:
        raise NotFound(f"Coupon {coupon_id} does not exist.")
    if coupon.expires_at <= timezone.now():
        raise CouponNotUsable("This coupon has expired.")
    if UserCoupon.objects.filter(coupon_id=coupon_id, user_id=user_id).exists():
        raise CouponAlreadyIssued("You already hold this coupon.")
    if coupon.issued_count >= coupon.quantity:
        raise CouponSoldOut("This coupon has run out.")
    if not get_user_model().objects.filter(pk=user_id).exists():
        raise NotFound(f"User {user_id} does not exist.")
    try:
        with transaction.atomic():
            # The quantity is checked in the statement that counts, so racing issuers cannot pass it.
            taken = Coupon.objects.filter(pk=coupon_id, issued_count__lt=F("quantity")).update(
                issued_count=F("issued_count") + 1
            )
            if not taken:
                raise CouponSoldOut("This coupon has run out.")
            return UserCoupon.objects.create(coupon_id=coupon_id, user_id=user_id)
    except IntegrityError:
        raise CouponAlreadyIssued("You already hold this coupon.") from None


def coupon_use_apply(*, order_id: int, user_coupon_id: int, user_id: int) -> None:
    """The coupon step's effect alone (no step record, no event); StepRejected if it cannot be taken."""
    now = timezone.now()
    # No join in this filter: Django would turn it into `id IN (SELECT … JOIN …)`, whose status check
    # PostgreSQL does not re-read after waiting for a racing use, and both orders would use the coupon.
    unexpired = Coupon.objects.filter(expires_at__gt=now).values("pk")
    used = UserCoupon.objects.filter(
        pk=user_coupon_id, user_id=user_id, status=UserCouponStatus.UNUSED, coupon_id__in=unexpired
    ).update(status=UserCouponStatus.USED, used_by_order_id=order_id, used_at=now)
    if used:
        return
    user_coupon = UserCoupon.objects.filter(pk=user_coupon_id, user_id=user_id).select_related("coupon").first()
    if user_coupon is None:
        raise StepRejected("the coupon does not belong to the user")
    if user_coupon.status == UserCouponStatus.USED:
        raise StepRejected("the coupon was already used")
    raise StepRejected("the coupon has expired")


@transaction.atomic
def coupon_use(*, order_id: int, user_coupon_id: int, user_id: int) -> StepOutcome:
    """The coupon step: mark the user's coupon used by this order. Reports CouponUsed or CouponUseFailed."""
    outcome = run_step(
        CouponStep,
        order_id=order_id,
        apply=lambda: coupon_use_apply(order_id=order_id, user_coupon_id=user_coupon_id, user_id=user_id),
    )
    if outcome.repeated:
        return outcome  # reported when it was decided; the outbox delivers that report
    if outcome.succeeded:
        publish(CouponUsed(order_id=order_id, user_coupon_id=user_coupon_id))
    else:
        publish(CouponUseFailed(order_id=order_id, user_coupon_id=user_coupon_id, reason=outcome.reason))
    return outcome


@transaction.atomic
def coupon_restore(*, order_id: int) -> bool:
    """Compensation: give back the coupon this order used, if it used one. Once."""
    restored_ids: list[int] = []

    def undo() -> None:
        used = UserCoupon.objects.select_for_update().filter(used_by_order_id=order_id, status=UserCouponStatus.USED)
        restored_ids.extend(used.values_list("pk", flat=True))
        used.update(status=UserCouponStatus.UNUSED, used_by_order_id=None, used_at=None)

    run_compensation(CouponStep, order_id=order_id, undo=undo)
    for user_coupon_id in restored_ids:
        publish(CouponRestored(order_id=order_id, user_coupon_id=user_coupon_id))
    return bool(restored_ids)
