"""The API on a real gunicorn (config/gunicorn.conf.py, the production settings), started by the test on a
free port against the test database and the test Redis, and stopped after it.

The server connects as an `application_name` of its own, so that its PostgreSQL connections can be counted
in pg_stat_activity. Data a test shares with it must be committed: such tests use `transactional_db`.
"""

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import requests
from django.conf import settings
from django.db import connection

from tests.processes import stop

ROOT = Path(settings.BASE_DIR)
GUNICORN_CONFIG = ROOT / "config" / "gunicorn.conf.py"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
# Variables of this process that must not reach the server (it gets its own below).
NOT_INHERITED = (
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_DEBUG",
    "DATABASE_URL",
    "DATABASE_CONN_MAX_AGE",
    "CELERY_BROKER_URL",
    "WEB_CONCURRENCY",
    "GUNICORN_THREADS",
    "GUNICORN_BIND",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url(name: str, application_name: str) -> str:
    db = connection.settings_dict
    user = db["USER"] or "postgres"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    server = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgres://{user}{password}@{server}/{name}?application_name={application_name}"


def server_environment(*, database_name: str, application_name: str, extra: Mapping[str, str] | None = None) -> dict:
    inherited = {key: value for key, value in os.environ.items() if key not in NOT_INHERITED}
    return {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": database_url(database_name, application_name),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.REDIS_URL,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
        **(extra or {}),
    }


def gunicorn_command(port: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "config.wsgi", "-c", str(GUNICORN_CONFIG), "-b", f"127.0.0.1:{port}"]


@dataclass
class RunningServer:
    url: str
    application_name: str
    database_name: str
    workers: int
    threads: int
    process: subprocess.Popen
    log: Path

    @property
    def connection_budget(self) -> int:
        return self.workers * self.threads

    def log_tail(self, characters: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-characters:]

    def connections_now(self, monitor: psycopg.Connection) -> int:
        row = monitor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (self.application_name,)
        ).fetchone()
        return row[0]


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/api/v1/products", timeout=2).status_code in (200, 401)
    except requests.RequestException:
        return False


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM gunicorn's master (it stops its workers); SIGKILL its whole group if it lingers."""
    stop(process, timeout=STOP_TIMEOUT, group=True)


@contextmanager
def running_gunicorn(
    *, database_name: str, workers: int = 2, threads: int = 4, extra_env: Mapping[str, str] | None = None
) -> Iterator[RunningServer]:
    port = free_port()
    application_name = f"server-test-{os.getpid()}-{port}"
    environment = server_environment(
        database_name=database_name,
        application_name=application_name,
        extra={"WEB_CONCURRENCY": str(workers), "GUNICORN_THREADS": str(threads), **(extra_env or {})},
    )
    with tempfile.NamedTemporaryFile(prefix="gunicorn-", suffix=".log", delete=False) as log_file:
        log = Path(log_file.name)
        process = subprocess.Popen(
            gunicorn_command(port),
            cwd=ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = RunningServer(
        url=f"http://127.0.0.1:{port}",
        application_name=application_name,
        database_name=database_name,
        workers=workers,
        threads=threads,
        process=process,
        log=log,
    )
    try:
        give_up = time.monotonic() + START_TIMEOUT
        while not _answers(server.url):
            if process.poll() is not None:
                raise AssertionError(f"gunicorn exited with {process.returncode}:\n{server.log_tail()}")
            if time.monotonic() > give_up:
                raise AssertionError(f"gunicorn did not answer within {START_TIMEOUT:.0f} s:\n{server.log_tail()}")
            time.sleep(0.2)
        yield server
    finally:
        _stop(process)
        log.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def test_database_name(django_db_setup, django_db_blocker) -> str:
    """The name of the test database (pytest-django has created it by now), for the server's DATABASE_URL."""
    with django_db_blocker.unblock():
        return connection.settings_dict["NAME"]


@pytest.fixture
def monitor(test_database_name) -> Iterator[psycopg.Connection]:
    """A connection of the test's own, outside Django, to watch pg_stat_activity from any thread."""
    db = connection.settings_dict
    with psycopg.connect(
        dbname=test_database_name,
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"] or "postgres",
        password=db["PASSWORD"] or None,
        autocommit=True,
        application_name="server-test-monitor",
    ) as monitor_connection:
        yield monitor_connection
