from django.db import models
from django.db.models import Q

from common.steps import OrderStepRecord


class PointsAccount(models.Model):
    user_id = models.BigIntegerField(unique=True)
    points = models.BigIntegerField(default=0)  # earned
    reserved = models.BigIntegerField(default=0)  # held for orders not completed yet
    frozen = models.BooleanField(default=False)  # a frozen account refuses new reservations

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(points__gte=0, reserved__gte=0), name="points_not_negative")]

    def __str__(self) -> str:
        return f"user {self.user_id}: {self.points} points, {self.reserved} held"


class EntryKind(models.TextChoices):
    RESERVE = "RESERVE"
    RELEASE = "RELEASE"
    EARN = "EARN"
    REVOKE = "REVOKE"


class PointsEntry(models.Model):
    """The ledger: reserved = reserves − releases − earnings; points = earnings − revocations."""

    user_id = models.BigIntegerField()
    order_id = models.BigIntegerField(db_index=True)
    kind = models.CharField(max_length=8, choices=EntryKind.choices)
    points = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["order_id", "kind"], name="points_entry_once_per_order")]

    def __str__(self) -> str:
        return f"{self.kind} {self.points} (order {self.order_id})"


class LoyaltyStep(OrderStepRecord):
    """What the loyalty app did for each order's points step (common.steps)."""
