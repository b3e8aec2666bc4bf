"""The transactional outbox: one row per (event, listener), written in the publisher's transaction.

A row is the durable promise that its listener will run: dispatched at once on commit, re-dispatched by
the relay if it is not handled in time (a crash before dispatch, a broker that was down or lost its
queues, a worker that died), and marked handled by the listener when it succeeds. A listener that keeps
failing is parked for an operator, never dropped.
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
        return "DISPATCHED" if self.dispatched_at else "WAITING"
