"""gunicorn's own lines in the fleet's shape (config/gunicorn_logging.py): its start, and its access line
when GUNICORN_ACCESS_LOG is on, beside the application's line for the same request."""

import json

import pytest
import requests
from django.db import connection

from tests.saga_worker import wait_for
from tests.server.conftest import running_gunicorn


@pytest.mark.django_db
def test_gunicorn_writes_json_lines_and_its_access_line_names_the_request_id():
    with running_gunicorn(
        database_name=connection.settings_dict["NAME"], workers=1, threads=2, extra_env={"GUNICORN_ACCESS_LOG": "-"}
    ) as server:
        answer = requests.get(f"{server.url}/healthz?probe=1", headers={"X-Request-ID": "lb-4711"}, timeout=5)
        wait_for(lambda: '"path": "/healthz"' in server.log_tail(), timeout=10, message="the access line")
        written = server.log.read_text().splitlines()

    assert answer.status_code == 200 and answer.headers["X-Request-ID"] == "lb-4711"
    lines = [json.loads(line) for line in written]  # stdout and stderr: every line is JSON
    own = [line["event"] for line in lines if line["logger"] == "gunicorn.error"]
    assert own[0].startswith("Starting gunicorn") and any(event.startswith("Booting worker") for event in own), own
    [access] = [line for line in lines if line["event"] == "http_access" and line["path"] == "/healthz"]
    assert (access["method"], access["query"], access["status"], access["request_id"]) == (
        "GET",
        "probe=1",
        200,
        "lb-4711",
    )
    assert access["duration_ms"] >= 0 and access["logger"] == "gunicorn.access"
    [finished] = [line for line in lines if line["event"] == "request_finished" and line["request_id"] == "lb-4711"]
    assert finished["code"] == 200
