"""The circuit breakers (common.circuit) at scrape time: read from Redis, where the fleet keeps them, so
every API process answers the same."""

from collections.abc import Iterator

from prometheus_client.core import Metric

from common.circuit import snapshots
from common.metrics.scrape import labelled_gauge

STATES = ("closed", "open", "half-open")


def collect() -> Iterator[Metric]:
    breakers = snapshots()
    yield labelled_gauge(
        "circuit_breaker_state",
        "1 for the state each breaker around a remote system is in (closed, open, half-open), 0 for the others.",
        ("name", "state"),
        {(breaker.name, state): float(breaker.state == state) for breaker in breakers for state in STATES},
    )
    yield labelled_gauge(
        "circuit_breaker_failures",
        "Consecutive failed calls each breaker has counted (it opens at CIRCUIT_FAILURE_THRESHOLD).",
        ("name",),
        {(breaker.name,): breaker.failures for breaker in breakers},
    )
