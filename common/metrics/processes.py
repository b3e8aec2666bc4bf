"""The figures of every process of the fleet, summed (prometheus-client's multiprocess mode).

prometheus-client chooses, once, when it is first imported, whether a process writes its counters to
files in PROMETHEUS_MULTIPROC_DIR: so the variable must be in the environment when the process starts
(scripts/run.sh, chaos.processes, config/settings/test.py), never set from Django's settings. This module
imports no Django, for gunicorn's master (config/gunicorn.conf.py).
"""

import os

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.registry import Collector

DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_directory() -> str | None:
    """Where the fleet's processes write their figures, or None: each process keeps its own."""
    return os.environ.get(DIRECTORY_VARIABLE) or None


def fleet_figures() -> Collector:
    """What the processes counted: every process's files summed, or this process's own registry."""
    directory = multiprocess_directory()
    if directory is None:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return registry


def mark_process_dead(pid: int) -> None:
    """A process of the fleet has exited: its live gauges go (its counters stay, summed with the others).
    Called by gunicorn's master for each worker (child_exit) and by Celery for each pool process."""
    directory = multiprocess_directory()
    if directory is not None:
        multiprocess.mark_process_dead(pid, directory)
