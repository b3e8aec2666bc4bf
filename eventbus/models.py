"""The transactional outbox: one row per (event, listener), written in the publisher's transaction.

A row is the durable promise that its listener will run: dispatched at once on commit, marked started
when a worker starts its task, re-dispatched by the relay if it is not started, or not handled, in time
(a crash before dispatch, a broker that was down or lost its queues, a worker that died), and marked
handled by the listener when it succeeds. A listener that keeps failing is parked for an operator, never
dropped.
"""

from django.db import models
from django.db.models import Q


class OutboxMessage(models.Model):
    event_id = models.UUIDField()
    event_type = models.CharField(max_length=64)
    listener = models.CharField(max_length=200, help_text="The Celery task that stands for the listener.")
    order_id = models.BigIntegerField(null=True, blank=True, db_index=True, help_text="The order it concerns.")
    envelope = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    dispatched_at = models.DateTimeField(null=True, blank=True, help_text="Last sent to the broker.")
    dispatch_count = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(
        null=True, blank=True, help_text="Last started by a worker (or retried): running since its last dispatch."
    )
    started_by = models.IntegerField(
        null=True,
        blank=True,
        help_text="The PostgreSQL backend (pid) of the worker connection that started it: once gone, so is the run.",
    )
    handled_at = models.DateTimeField(null=True, blank=True)
    failure_count = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    parked_at = models.DateTimeField(null=True, blank=True, help_text="Given up on: waits for an operator.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event_id", "listener"], name="outbox_once_per_event_and_listener"),
        ]
        indexes = [
            # What the relay scans: rows neither handled nor parked, oldest dispatch first.
            models.Index(
                fields=["dispatched_at"],
                condition=Q(handled_at__isnull=True, parked_at__isnull=True),
                name="outbox_unhandled",
            ),
            # What a batched listener claims: its rows no worker has started, oldest first.
            models.Index(
                fields=["listener", "id"],
                condition=Q(handled_at__isnull=True, parked_at__isnull=True, started_at__isnull=True),
                name="outbox_waiting",
            ),
            models.Index(fields=["handled_at"], name="outbox_handled_at"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.listener}"

    @property
    def state(self) -> str:
        if self.handled_at:
            return "HANDLED"
        if self.parked_at:
            return "PARKED"
        if self.dispatched_at is None:
            return "WAITING"
        return "STARTED" if self.started_since_dispatch else "DISPATCHED"

    @property
    def started_since_dispatch(self) -> bool:
        return self.started_at is not None and self.dispatched_at is not None and self.started_at >= self.dispatched_at


class EventRecord(models.Model):
    """The event history (docs/design.md §7): every envelope published, appended in the publisher's
    transaction and never changed, kept EVENT_HISTORY_RETENTION_DAYS, long after the outbox has forgotten
    its deliveries. What an order's history and its timeline read."""

    event_id = models.UUIDField(unique=True)
    event_type = models.CharField(max_length=64)
    occurred_at = models.DateTimeField()
    source = models.CharField(max_length=64)
    correlation_id = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    causation_id = models.UUIDField(null=True, blank=True)
    order_id = models.BigIntegerField(null=True, blank=True)
    data = models.JSONField()

    class Meta:
        indexes = [
            models.Index(fields=["order_id", "occurred_at"], name="event_history_of_order"),
            models.Index(fields=["occurred_at"], name="event_history_occurred_at"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"
