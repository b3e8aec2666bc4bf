"""What the tests of the fleet's log lines share: this process's lines as the fleet writes them, and
processes of the fleet (a Celery worker, beat, a Django command) started with the fleet's own logging, whose
stdout a test reads line by line."""

import io
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from django.conf import settings
from django.db import connection

from common import task_logs
from common.logs import formatter, logging_config
from tests.processes import stop
from tests.server.conftest import NOT_INHERITED, ROOT, database_url

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def parsed(lines: list[str]) -> list[dict]:
    """Each line as the JSON object it must be (json.loads fails the test on any other line)."""
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict]]]:
    """This process's log lines from INFO up while the test runs, rendered as the fleet renders them
    (LOG_FORMAT=json) with the fleet's logger levels (common.logs.logging_config), parsed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("json"))
    root = logging.getLogger()
    configured = {name: logging.getLogger(name) for name in logging_config(level="INFO", format_name="json")["loggers"]}
    levels = {name: logger.level for name, logger in configured.items()}
    root_level = root.level
    for name, logger in configured.items():
        logger.setLevel(logging_config(level="INFO", format_name="json")["loggers"][name]["level"])
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lambda: parsed(stream.getvalue().splitlines())
    finally:
        root.removeHandler(handler)
        root.setLevel(root_level)
        for name, logger in configured.items():
            logger.setLevel(levels[name])


@pytest.fixture
def task_receivers() -> None:
    """django-structlog's task receivers, as a worker connects them when it starts (common.task_logs), for
    tasks run here with `apply`."""
    task_logs.connect_task_receivers()


@dataclass
class FleetProcess:
    """A process of the fleet and the lines it has written on stdout so far."""

    process: subprocess.Popen
    lines: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    def wait_for_line(self, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            found = next((line for line in list(self.lines) if predicate(line)), None)
            if found is not None:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no {what} line:\n{''.join(self.lines[-30:])}\n{''.join(self.stderr[-30:])}")


def fleet_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a process of the fleet on the test database and the test Redis."""
    inherited = {key: value for key, value in os.environ.items() if key not in NOT_INHERITED}
    return {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "tests.logging.worker_settings",
        "DATABASE_URL": database_url(connection.settings_dict["NAME"], "logging-test"),
        "TEST_REDIS_URL": settings.REDIS_URL,
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        "PYTHONUNBUFFERED": "1",
        **(extra or {}),
    }


def _read(stream, into: list[str]) -> None:
    for line in stream:
        into.append(line)


@contextmanager
def fleet_process(arguments: list[str], extra_env: Mapping[str, str] | None = None) -> Iterator[FleetProcess]:
    """Start `python -m <arguments>` as the fleet would, and stop it (SIGTERM, then SIGKILL) afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-m", *arguments],
        cwd=ROOT,
        env=fleet_environment(extra_env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    running = FleetProcess(process=process)
    readers = [
        threading.Thread(target=_read, args=(process.stdout, running.lines), daemon=True),
        threading.Thread(target=_read, args=(process.stderr, running.stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        yield running
    finally:
        stop(process, timeout=STOP_TIMEOUT, group=True)
        for reader in readers:
            reader.join(timeout=5)


@contextmanager
def celery_worker_process(name: str, pool: str = "threads", concurrency: int = 4) -> Iterator[FleetProcess]:
    """A Celery worker started as the Procfile starts one (on every queue), ready."""
    arguments = ["celery", "-A", "config", "-q", "worker", "-P", pool, "-c", str(concurrency), "-n", f"{name}@%h"]
    with fleet_process([*arguments, "--without-gossip", "--without-mingle", "--without-heartbeat"]) as worker:
        worker.wait_for_line(lambda line: "ready." in line, START_TIMEOUT, "worker ready")
        yield worker
