from django.db import models
from django.db.models import Q

from common.steps import OrderStepRecord


class ProductStatus(models.TextChoices):
    SELLING = "SELLING"
    HOLD = "HOLD"
    STOP_SELLING = "STOP_SELLING"


class Product(models.Model):
    name = models.CharField(max_length=200, unique=True)
    price = models.PositiveBigIntegerField()
    status = models.CharField(max_length=16, choices=ProductStatus.choices, default=ProductStatus.SELLING)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(price__gt=0), name="product_price_positive")]

    def __str__(self) -> str:
        return self.name


class Stock(models.Model):
    """Units on hand. Changed only by conditional updates in services, each with a StockMovement."""

    product = models.OneToOneField(Product, on_delete=models.PROTECT, primary_key=True, related_name="stock")
    quantity = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(quantity__gte=0), name="stock_quantity_not_negative")]

    def __str__(self) -> str:
        return f"{self.product_id}: {self.quantity}"


class MovementKind(models.TextChoices):
    ADD = "ADD"  # an operator adds units (also the initial stock)
    DEDUCT = "DEDUCT"  # an order's stock step
    RESTORE = "RESTORE"  # an order's compensation


class StockMovement(models.Model):
    """The stock ledger: a product's stock is the sum of its movements' `delta`."""

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="movements")
    kind = models.CharField(max_length=8, choices=MovementKind.choices)
    delta = models.BigIntegerField()
    order_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["order_id", "product", "kind"],
                condition=Q(order_id__isnull=False),
                name="stock_movement_once_per_order",
            ),
            models.CheckConstraint(
                condition=(Q(kind=MovementKind.ADD, delta__gt=0, order_id__isnull=True))
                | (Q(kind=MovementKind.DEDUCT, delta__lt=0, order_id__isnull=False))
                | (Q(kind=MovementKind.RESTORE, delta__gt=0, order_id__isnull=False)),
                name="stock_movement_kind_matches_delta",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.delta:+d} of product {self.product_id}"


class StockStep(OrderStepRecord):
    """What the products app did for each order's stock step (see common.steps)."""
