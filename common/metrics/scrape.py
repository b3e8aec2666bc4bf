"""What one scrape of /metrics answers: the fleet's counters (common.metrics.processes) and the gauges the
installed apps read at scrape time.

Adding a gauge of state (the extension point). An installed app's `metrics.py` may define

    def collect() -> Iterable[prometheus_client.Metric]:
        '''Read at every scrape, in the API process that answers it.'''
        yield gauge("outbox_parked", "Outbox rows given up on, waiting for an operator.", parked_count())
        yield labelled_gauge(
            "circuit_breaker_state", "1 for the state each breaker is in.", ("name", "state"),
            {(name, state): 1 for name, state in breaker_states().items()},
        )

and nothing else needs to change: /metrics finds the hooks through common.app_hooks, in INSTALLED_APPS
order (a `metrics.py` without `collect`, like the benchmark's, is not a hook). What to know:

- A scrape runs the hooks in one transaction whose statements time out (SCRAPE_STATEMENT_TIMEOUT_MS), each
  hook in a savepoint: queries must be cheap (a count over an index), since Prometheus scrapes every few
  seconds. A hook that raises is logged and left out of that answer, the others are not, and
  `metrics_collector_up{app}` says 0 for it: a database outage does not hide the processes' counters.
- Values are the state of the database now, never a per-process count: every API process answers the same.
- A figure that happens in a process (a count of events) is not a hook: it is a prometheus-client Counter
  or Histogram incremented where it happens (see common.metrics).
- Labels take few values; never an order's or a user's id.
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence

import structlog
from django.db import connection, transaction
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from common.app_hooks import app_modules
from common.metrics.processes import fleet_figures

logger = structlog.get_logger(__name__)

HOOK_MODULE = "metrics"
# Well under Prometheus' default scrape timeout (10 s): a query stuck behind a lock fails its hook only.
SCRAPE_STATEMENT_TIMEOUT_MS = 2000


def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def labelled_gauge(
    name: str, documentation: str, labels: Sequence[str], values: Mapping[tuple[str, ...], float]
) -> GaugeMetricFamily:
    """One gauge with a sample per label values: {("orders",): 3, ("payments",): 0} for labels ("app",)."""
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    for label_values, value in values.items():
        family.add_metric(list(label_values), value)
    return family


def app_metrics() -> Iterator[Metric]:
    """Every installed app's scrape-time gauges, and whether each app's hook answered."""
    hooks = [
        (config.label, module.collect) for config, module in app_modules(HOOK_MODULE) if hasattr(module, "collect")
    ]
    up: dict[tuple[str, ...], float] = {}
    collected: list[Metric] = []
    try:
        with transaction.atomic():
            _bound_statements()
            for app, collect in hooks:
                try:
                    with transaction.atomic():
                        collected += list(collect())
                except Exception:  # one app's failure must not cost the others' figures
                    logger.exception("metrics_not_read", app=app)
                    up[(app,)] = 0
                else:
                    up[(app,)] = 1
    except Exception:  # the database cannot be reached: the processes' figures are still worth answering
        logger.exception("metrics_not_read", app="every app")
    for app, _ in hooks:
        up.setdefault((app,), 0)
    yield from collected
    yield labelled_gauge(
        "metrics_collector_up", "1 if the app's scrape-time metrics were read, 0 if not.", ("app",), up
    )


def _bound_statements() -> None:
    """Let each statement of this transaction take SCRAPE_STATEMENT_TIMEOUT_MS at most; inside a caller's
    transaction (a test's) its own rules stand."""
    if len(connection.atomic_blocks) > 1:  # not the outermost block: the limit would outlive the scrape
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(SCRAPE_STATEMENT_TIMEOUT_MS)])


class Scrape:
    """One answer of /metrics, as prometheus-client's exposition reads a registry."""

    def collect(self) -> Iterable[Metric]:
        from common.metrics import circuits  # it reads the breakers' module, which imports the settings

        yield from fleet_figures().collect()
        yield from app_metrics()
        yield from circuits.collect()


def scrape() -> bytes:
    """The Prometheus text format of everything /metrics shows."""
    return generate_latest(Scrape())
