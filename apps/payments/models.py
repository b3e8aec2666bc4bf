from django.db import models
from django.db.models import Q


class PaymentStatus(models.TextChoices):
    READY = "READY"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


class Payment(models.Model):
    """One payment per order: READY → COMPLETED → CANCELED, or READY → FAILED."""

    order_id = models.BigIntegerField(unique=True)
    user_id = models.BigIntegerField(db_index=True)
    amount = models.BigIntegerField()
    status = models.CharField(max_length=10, choices=PaymentStatus.choices, default=PaymentStatus.READY)
    gateway_reference = models.CharField(max_length=100, blank=True, default="")
    failure_reason = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive")]

    def __str__(self) -> str:
        return f"payment {self.pk} of order {self.order_id}: {self.status}"
