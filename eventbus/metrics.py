"""The outbox's backlog at scrape time (common.metrics.scrape): what waits for its listener, for how long,
and what waits for an operator.

A pending row is one whose listener has not handled it and that is not parked: waiting to be sent, in the
broker or running. A parked row (eventbus.selectors.PARKED) was given up on by the relay after
OUTBOX_MAX_DISPATCHES, or its listener failed for good; it waits for an operator's retry in admin.
"""

from collections.abc import Iterator

from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client.core import Metric

from common.metrics.scrape import gauge
from eventbus.models import OutboxMessage
from eventbus.selectors import PARKED

PENDING = Q(parked_at__isnull=True)  # among the unhandled rows


def collect() -> Iterator[Metric]:
    """One query over the unhandled rows, which the index on handled_at finds without reading the handled
    ones (the outbox keeps those for OUTBOX_RETENTION_HOURS)."""
    now = timezone.now()
    backlog = OutboxMessage.objects.filter(handled_at__isnull=True).aggregate(
        pending=Count("pk", filter=PENDING),
        oldest=Min("created_at", filter=PENDING),
        parked=Count("pk", filter=PARKED),
    )
    oldest = backlog["oldest"]
    yield gauge(
        "outbox_pending", "Outbox rows not handled by their listener yet, parked ones aside.", backlog["pending"]
    )
    yield gauge(
        "outbox_oldest_pending_age_seconds",
        "Age of the oldest pending outbox row (0 when none is pending).",
        max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
    )
    yield gauge("outbox_parked", "Outbox rows parked for an operator: their listener gave up.", backlog["parked"])
