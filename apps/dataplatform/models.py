from django.db import models


class DeliveryStatus(models.TextChoices):
    PENDING = "PENDING"  # not tried yet
    SENT = "SENT"  # the platform accepted it
    RETRYING = "RETRYING"  # a try failed; another is scheduled with backoff
    DEAD = "DEAD"  # every try failed: an operator may send it again from admin
    RECORDED = "RECORDED"  # no DATA_PLATFORM_URL is set: kept here only


class Delivery(models.Model):
    """One event of an order on its way to the external data platform: its completion, and its
    cancellation if its customer cancels it later."""

    order_id = models.BigIntegerField()
    event_type = models.CharField(max_length=64, default="OrderCompleted", help_text="OrderCompleted or OrderCanceled")
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        indexes = [models.Index(fields=["status", "updated_at"], name="delivery_status_age")]
        constraints = [
            models.UniqueConstraint(fields=["order_id", "event_type"], name="delivery_once_per_order_event"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} of order {self.order_id} → data platform: {self.status}"
