"""The start-up checks: gunicorn and a Celery worker refuse to start when their own connections do not fit
the server, and `manage.py connection_budget` (run by `make run`) refuses a fleet that does not fit."""

import re
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from tests.server.conftest import ROOT, free_port, gunicorn_command, server_environment

START_TIMEOUT = 60


def run(command: list[str], environment: dict) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=START_TIMEOUT)


def test_gunicorn_refuses_to_start_with_more_threads_than_the_server_has_connections(test_database_name):
    environment = server_environment(
        database_name=test_database_name,
        application_name="server-test-refused",
        extra={"WEB_CONCURRENCY": "40", "GUNICORN_THREADS": "8"},
    )

    started = run(gunicorn_command(free_port()), environment)

    written = started.stdout + started.stderr  # gunicorn's log lines are on stdout (config/gunicorn_logging.py)
    assert started.returncode == 1, written
    assert "The API (gunicorn) would hold more PostgreSQL connections than the server allows" in started.stderr
    assert re.search(r"web +320 +gunicorn: 40 workers × 8 threads", started.stderr), started.stderr
    assert "Starting gunicorn" in written and "Booting worker" not in written


def test_a_celery_worker_refuses_to_start_with_a_pool_larger_than_the_server_allows(test_database_name):
    environment = server_environment(database_name=test_database_name, application_name="server-test-refused")
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-c", "500", "-n", "refused@%h"]

    started = run([*command, "--without-gossip", "--without-mingle", "-l", "info"], environment)

    written = started.stdout + started.stderr  # the log's lines are on stdout (common/logs.py)
    assert started.returncode == 1, written
    assert "would hold more PostgreSQL connections than the server allows" in written
    assert "concurrency 500 (prefork)" in written


@pytest.mark.django_db
def test_the_fleet_check_accepts_the_procfile_and_refuses_a_tiny_server(monkeypatch, capsys, settings):
    settings.DATABASE_COMMAND_CONNECTIONS = 2
    for variable in ("WEB_CONCURRENCY", "GUNICORN_THREADS"):
        monkeypatch.delenv(variable, raising=False)

    call_command("connection_budget")
    accepted = capsys.readouterr().out
    with pytest.raises(CommandError, match="more PostgreSQL connections than the server allows"):
        call_command("connection_budget", max_connections=20)
    refused = capsys.readouterr().out

    assert re.search(r"web +8 +gunicorn: 2 workers × 4 threads", accepted), accepted
    assert re.search(r"steps +2 +celery worker: concurrency 2 \(prefork\)", accepted), accepted
    assert re.search(r"remote +32 +celery worker: concurrency 32 \(threads\)", accepted), accepted
    assert "needed 46 = 8 + 2 + 2 + 32 + 0 + 2" in accepted
    assert "fits: 46 ≤" in accepted
    assert "DOES NOT FIT: 46 >" in refused
