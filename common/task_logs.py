"""Celery's part of the fleet's log lines (common/logs.py).

- Logging is Django's (LOGGING, applied when the worker or beat loads Django): a `setup_logging` receiver
  makes Celery leave the handlers alone, so its `-l` flag neither adds a second format nor overrides
  LOG_LEVEL, and the worker does not turn print() into log lines of its own.
- A task published while ids are bound carries them in django-structlog's `__django_structlog__` header
  (DJANGO_STRUCTLOG_CELERY_ENABLED): the API's tasks, sent when its transaction commits, still inside the
  request. Only the ids that belong to the whole chain travel (`request_id`, and `parent_task_id`, the
  sender's task); a listener's own event and order come from its envelope, the relay's resends included.
- In a worker, django-structlog writes a line as each task starts, succeeds (with its duration), retries
  or fails, with the task's id and name and, for a listener, its event's ids (bound at the start, before
  the run binds them again for itself: eventbus.log_context). The context is cleared when the task ends,
  so nothing is carried into the next task of the process or thread.
"""

import structlog
from celery.signals import setup_logging, task_postrun, worker_init
from django_structlog.celery import signals as task_log_signals

from eventbus.log_context import task_log_ids

TRAVELLING = ("request_id", "parent_task_id")


def _leave_logging_to_django(**kwargs) -> None:
    """Connected at all, this receiver stops Celery's own logging setup (handlers, formats, levels)."""


def connect_task_receivers(**kwargs) -> None:
    """django-structlog's receivers of the task's own signals (task_prerun, task_success, ...), in workers.
    DJANGO_STRUCTLOG_CELERY_ENABLED connects the publishing side of the same receiver in every process;
    its documented worker bootstep would add a second receiver, and every task a worker sends would be
    stamped and logged twice."""
    from django.apps import apps

    apps.get_app_config("django_structlog")._celery_receiver.connect_worker_signals()


def _bind_task_ids(sender, task, logger, **kwargs) -> None:
    structlog.contextvars.bind_contextvars(task=task.name, **task_log_ids(task.request.args, task.request.kwargs))


def _keep_travelling_ids(sender, context: dict, **kwargs) -> None:
    kept = {key: context[key] for key in TRAVELLING if key in context}
    context.clear()
    context.update(kept)


def _clear_task_context(**kwargs) -> None:
    structlog.contextvars.clear_contextvars()


def connect() -> None:
    setup_logging.connect(_leave_logging_to_django, weak=False)
    worker_init.connect(connect_task_receivers, weak=False)
    task_postrun.connect(_clear_task_context, weak=False)
    task_log_signals.bind_extra_task_metadata.connect(_bind_task_ids, weak=False)
    task_log_signals.modify_context_before_task_publish.connect(_keep_travelling_ids, weak=False)
