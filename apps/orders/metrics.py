"""The orders app's metrics (common.metrics): how sagas end, counted where they end, and the orders still
in flight, read from the database at scrape time.

`saga_orders_total{outcome}` counts each move of an order to COMPLETED, FAILED or CANCELED once, after the
transaction that made it commits (the conditional update that fences the move is what makes it once): a
move rolled back counts nothing, and a completed order later cancelled counts once in each.
`saga_order_duration_seconds{outcome}` is the saga's time, from the order's creation to COMPLETED or
FAILED; a cancel after completion is the customer's decision, not the saga's time, and is not observed.
"""

from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone
from prometheus_client import Counter, Histogram
from prometheus_client.core import Metric

from apps.orders.models import Order, OrderStatus
from apps.orders.monitor import open_violations
from common.metrics.scrape import gauge

OUTCOMES = {
    OrderStatus.COMPLETED: "completed",
    OrderStatus.FAILED: "failed",
    OrderStatus.CANCELED: "canceled",
}
SAGA_ENDS = (OrderStatus.COMPLETED, OrderStatus.FAILED)
IN_FLIGHT = (OrderStatus.CREATED, OrderStatus.PAYMENT_WAITING)

ORDERS_ENDED = Counter(
    "saga_orders",
    "Orders moved to an outcome: completed, failed, canceled (a completed order later canceled counts in both).",
    ["outcome"],
)
SAGA_DURATION = Histogram(
    "saga_order_duration_seconds",
    "Time from an order's creation to its saga's end (completed or failed).",
    ["outcome"],
    # From a quick saga to one failed by its deadline (SAGA_DEADLINE_SECONDS, 60 s by default) and the sweep.
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 90, 120, 300),
)
for _status, _outcome in OUTCOMES.items():  # every series exists from the start, at 0
    ORDERS_ENDED.labels(outcome=_outcome)
    if _status in SAGA_ENDS:
        SAGA_DURATION.labels(outcome=_outcome)


def count_order_moved(status: str, seconds: float) -> None:
    """Count an order's move to an outcome (COMPLETED, FAILED, CANCELED), `seconds` after it was placed:
    called once its transaction committed (apps.orders.services.moves)."""
    outcome = OUTCOMES[status]
    ORDERS_ENDED.labels(outcome=outcome).inc()
    if status in SAGA_ENDS:
        SAGA_DURATION.labels(outcome=outcome).observe(max(seconds, 0.0))


def collect() -> Iterator[Metric]:
    """Scrape time (common.metrics.scrape): one count over the (status, created_at) index, one over the
    monitor's findings."""
    past_deadline = Q(created_at__lt=timezone.now() - timedelta(seconds=settings.SAGA_DEADLINE_SECONDS))
    counts = Order.objects.filter(status__in=IN_FLIGHT).aggregate(
        in_flight=Count("pk"), past_deadline=Count("pk", filter=past_deadline)
    )
    yield gauge(
        "saga_orders_in_flight", "Orders CREATED or PAYMENT_WAITING: their saga has not ended.", counts["in_flight"]
    )
    yield gauge(
        "saga_orders_past_deadline",
        "Orders still CREATED or PAYMENT_WAITING past SAGA_DEADLINE_SECONDS (stuck, until the sweep ends them).",
        counts["past_deadline"],
    )
    yield gauge(
        "saga_invariant_violations",
        "Broken invariants the consistency monitor found and no operator has marked resolved (admin lists them).",
        open_violations(),
    )
