from django.conf import settings
from django.db import models
from django.db.models import Q

from common.steps import OrderStepRecord


class Balance(models.Model):
    """A user's balance. Changed only by services, each change with a BalanceTransaction."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, primary_key=True)
    amount = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(amount__gte=0), name="balance_amount_not_negative")]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.amount}"


class TransactionKind(models.TextChoices):
    CHARGE = "CHARGE"
    USE = "USE"
    REFUND = "REFUND"


class BalanceTransaction(models.Model):
    """The ledger: a balance equals its charges − uses + refunds. USE and REFUND carry their order."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=8, choices=TransactionKind.choices)
    amount = models.BigIntegerField()
    balance_after = models.BigIntegerField()
    order_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="balance_transaction_amount_positive"),
            models.CheckConstraint(
                condition=Q(kind=TransactionKind.CHARGE, order_id__isnull=True)
                | (~Q(kind=TransactionKind.CHARGE) & Q(order_id__isnull=False)),
                name="balance_transaction_order_iff_not_charge",
            ),
            models.UniqueConstraint(
                fields=["order_id", "kind"],
                condition=Q(order_id__isnull=False),
                name="balance_transaction_once_per_order",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} (user {self.user_id})"

    @property
    def signed_amount(self) -> int:
        return -self.amount if self.kind == TransactionKind.USE else self.amount


class BalanceStep(OrderStepRecord):
    """What the balance app did for each order's balance step (see common.steps)."""
