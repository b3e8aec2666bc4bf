import os

from celery import Celery
from celery.signals import task_postrun, task_prerun
from django.db import close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _database_hygiene(**kwargs) -> None:
    """What Django does around every request, around every task: close a connection that errored (a cut
    connection) or outlived CONN_MAX_AGE; keep a healthy one. Celery's own fixup would otherwise open a
    new connection for every task (see CELERY_DB_REUSE_MAX)."""
    close_old_connections()
