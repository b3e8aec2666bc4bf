import os

import structlog
from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init
from django.db import close_old_connections

from common import task_logs
from common.worker_queues import add_queue_groups_option

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# `celery -A config worker --queue-groups steps`: the queues of the installed apps, by group (common.queues).
add_queue_groups_option(app)
# Logs: Django's LOGGING, not Celery's own setup; every task's lines carry its ids (common/task_logs.py).
task_logs.connect()


@task_prerun.connect
@task_postrun.connect
def _database_hygiene(**kwargs) -> None:
    """What Django does around every request, around every task: close a connection that errored (a cut
    connection) or outlived CONN_MAX_AGE; keep a healthy one. Celery's own fixup would otherwise open a
    new connection for every task (see CELERY_DB_REUSE_MAX)."""
    close_old_connections()


@worker_init.connect
def _check_connection_budget(sender, **kwargs) -> None:
    """Refuse to start a worker whose pool would hold more PostgreSQL connections than the server allows
    (common/connection_budget.py). Celery logs and swallows a handler's exceptions, so this exits itself."""
    from common.connection_budget import ConnectionBudgetExceeded, celery_worker_claim_at_init, check_at_start

    claim = celery_worker_claim_at_init(sender)
    try:
        check_at_start([claim], what=f"The Celery worker {claim.name}")
    except ConnectionBudgetExceeded as refused:
        structlog.get_logger(__name__).critical("worker_not_started", reason=str(refused))
        raise SystemExit(1) from refused


@worker_init.connect
def _count_tasks(**kwargs) -> None:
    """Count and time every task this worker runs, for /metrics: importing common/metrics/tasks.py connects
    its receivers (pool processes inherit them). Not imported at the top: this module is imported before
    Django's settings, which in the tests put PROMETHEUS_MULTIPROC_DIR in the environment, and
    prometheus-client reads that variable once, when first imported."""
    import common.metrics.tasks  # noqa: F401


@worker_init.connect
def _check_queue_type(**kwargs) -> None:
    """Refuse to start a worker on quorum queues the broker cannot serve (common/broker_options.py)."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    from common.broker_options import check_server_supports

    try:
        check_server_supports(app, settings.CELERY_BROKER_QUEUE_TYPE)
    except ImproperlyConfigured as refused:
        structlog.get_logger(__name__).critical("worker_not_started", reason=str(refused))
        raise SystemExit(1) from refused
