from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from common.steps import OrderStepRecord


class Coupon(models.Model):
    name = models.CharField(max_length=200)
    discount_rate = models.DecimalField(max_digits=5, decimal_places=4)
    quantity = models.PositiveIntegerField(help_text="How many may be issued, first come first served.")
    issued_count = models.PositiveIntegerField(default=0, editable=False)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(discount_rate__gte=Decimal(0), discount_rate__lte=Decimal(1)),
                name="coupon_discount_rate_in_unit_interval",
            ),
            models.CheckConstraint(condition=Q(issued_count__lte=F("quantity")), name="coupon_never_over_issued"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.discount_rate:%})"


class UserCouponStatus(models.TextChoices):
    UNUSED = "UNUSED"
    USED = "USED"


class UserCoupon(models.Model):
    coupon = models.ForeignKey(Coupon, on_delete=models.PROTECT, related_name="issued")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=8, choices=UserCouponStatus.choices, default=UserCouponStatus.UNUSED)
    used_by_order_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    # Indexed for the consistency monitor, which checks the coupons issued recently.
    issued_at = models.DateTimeField(auto_now_add=True, db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["coupon", "user"], name="one_coupon_of_a_kind_per_user"),
            models.CheckConstraint(
                condition=Q(status=UserCouponStatus.USED, used_by_order_id__isnull=False)
                | Q(status=UserCouponStatus.UNUSED, used_by_order_id__isnull=True),
                name="user_coupon_used_iff_order",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.coupon} for user {self.user_id}: {self.status}"


class CouponStep(OrderStepRecord):
    """What the coupons app did for each order's coupon step (see common.steps)."""
