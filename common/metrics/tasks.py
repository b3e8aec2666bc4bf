"""Every Celery task a worker runs, counted by outcome and timed, in the process that runs it (a prefork
pool process, a threads worker, the tests' worker), and pool processes marked dead as they exit.

Imported by the worker as it starts (config/celery.py, worker_init), which connects the receivers below;
the API never runs tasks. An inline listener (eventbus.bus) runs inside its publisher's task and is not a
task of its own.

Outcomes: `succeeded`, `failed` (an error the task does not retry, or a hard time limit, which kills the
pool process before the task can say so), `retried` (this run ended by scheduling a retry). A run cut
short by its process dying is not counted: its message is delivered again and that run counts.
"""

import os
import threading
import time

from celery import states
from celery.exceptions import TimeLimitExceeded
from celery.signals import task_failure, task_postrun, task_prerun, worker_process_shutdown, worker_shutdown
from prometheus_client import Counter, Histogram

from common.metrics.processes import mark_process_dead

OUTCOMES = {
    states.SUCCESS: "succeeded",
    states.FAILURE: "failed",
    states.RETRY: "retried",
    states.IGNORED: "ignored",
    states.REJECTED: "rejected",
}

TASKS = Counter("celery_tasks", "Celery task runs, by task name and outcome.", ["task", "outcome"])
RUNTIME = Histogram(
    "celery_task_duration_seconds",
    "How long a task ran, by task name, whatever its outcome.",
    ["task"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

# When each running task started, by task id and thread (a threads pool runs many at once; a task delivered
# twice may run twice at once).
_started: dict[tuple[str, int], float] = {}


@task_prerun.connect(weak=False, dispatch_uid="common.metrics.tasks.started")
def _task_started(*, task_id: str, **kwargs) -> None:
    _started[(task_id, threading.get_ident())] = time.perf_counter()


@task_postrun.connect(weak=False, dispatch_uid="common.metrics.tasks.finished")
def _task_finished(*, task_id: str, task, state: str | None = None, **kwargs) -> None:
    started = _started.pop((task_id, threading.get_ident()), None)
    TASKS.labels(task=task.name, outcome=OUTCOMES.get(state, str(state).lower())).inc()
    if started is not None:
        RUNTIME.labels(task=task.name).observe(time.perf_counter() - started)


@task_failure.connect(weak=False, dispatch_uid="common.metrics.tasks.killed")
def _task_killed(*, sender, exception: BaseException | None = None, **kwargs) -> None:
    """A hard time limit: the worker's main process kills the pool process and reports the failure itself
    (an error inside the task is counted by task_postrun, in the pool process)."""
    if isinstance(exception, TimeLimitExceeded):
        TASKS.labels(task=sender.name, outcome="failed").inc()


@worker_process_shutdown.connect(weak=False, dispatch_uid="common.metrics.tasks.pool_process_exited")
def _pool_process_exited(*, pid: int | None = None, **kwargs) -> None:
    mark_process_dead(pid or os.getpid())


@worker_shutdown.connect(weak=False, dispatch_uid="common.metrics.tasks.worker_exited")
def _worker_exited(**kwargs) -> None:
    mark_process_dead(os.getpid())
