from django.conf import settings
from django.db import models
from django.db.models import F, Q


class OrderStatus(models.TextChoices):
    CREATED = "CREATED"
    PAYMENT_WAITING = "PAYMENT_WAITING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"  # completed, then cancelled by the customer: everything it took was given back


class Order(models.Model):
    """An order. Its status moves only by conditional updates in services (CREATED → PAYMENT_WAITING →
    COMPLETED → CANCELED, or CREATED / PAYMENT_WAITING → FAILED), which is what fences the saga's
    decisions, and a cancel racing them."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders")
    status = models.CharField(max_length=16, choices=OrderStatus.choices, default=OrderStatus.CREATED)
    failure_reason = models.TextField(blank=True, default="")
    user_coupon_id = models.BigIntegerField(null=True, blank=True)
    gross_price = models.BigIntegerField()
    discount_price = models.BigIntegerField(default=0)
    total_price = models.BigIntegerField()
    # The participants whose step concerns this order (common.participants), asked once at creation; NULL
    # for an order placed before participants declared themselves (see `taking_part`).
    participants = models.JSONField(null=True, blank=True)
    # The steps' outcome as the orders app saw it when it decided (the process hash lives in Redis).
    steps = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["user", "-created_at"], name="order_user_newest"),
            models.Index(fields=["status", "created_at"], name="order_status_age"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    discount_price__gte=0, total_price__gt=0, total_price=F("gross_price") - F("discount_price")
                ),
                name="order_prices_add_up",
            ),
        ]

    def __str__(self) -> str:
        return f"order {self.pk} ({self.status})"

    @property
    def taking_part(self) -> tuple[str, ...]:
        """The steps that concern the order."""
        return taking_part(self.participants, user_coupon_id=self.user_coupon_id)


def taking_part(participants: list[str] | None, *, user_coupon_id: int | None) -> tuple[str, ...]:
    """An order's steps as stored; an order placed before participants declared themselves (NULL: the
    column was added without rewriting the table, and a node still on the old code writes NULL) ran the
    steps of that time: balance and stock, and the coupon's when it had one."""
    if participants is not None:
        return tuple(participants)
    return ("balance", "coupon", "stock") if user_coupon_id is not None else ("balance", "stock")


class OrderItem(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items")
    product_id = models.BigIntegerField()
    quantity = models.PositiveIntegerField()
    unit_price = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order", "product_id"], name="order_item_one_line_per_product"),
            models.CheckConstraint(condition=Q(quantity__gt=0, unit_price__gt=0), name="order_item_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × product {self.product_id}"


class InvariantViolation(models.Model):
    """A broken invariant of docs/design.md §5, as the consistency monitor found it (apps.orders.monitor):
    one open row per distinct finding, seen again on every run that finds it, until an operator marks it
    resolved."""

    description = models.TextField()
    # The finding without its changing figures ("product 3: stock # != ledger #"): what makes it the same
    # finding on the next run, whose description may read other numbers.
    key = models.TextField()
    # The first order, user and product the finding names, to find it from them.
    order_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    user_id = models.BigIntegerField(null=True, blank=True)
    product_id = models.BigIntegerField(null=True, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField()
    times_seen = models.PositiveIntegerField(default=1)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["key"], condition=Q(resolved_at__isnull=True), name="invariant_violation_open_once"
            ),
        ]
        indexes = [models.Index(fields=["-last_seen_at"], name="invariant_violation_recent")]

    def __str__(self) -> str:
        return self.description
