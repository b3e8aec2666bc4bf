"""The shape of a line: LOG_FORMAT switches between one JSON object a line and a readable line, LOG_LEVEL
still decides what is written, and a request's id is the caller's or a new one, returned and logged."""

import json
import re
import subprocess
import sys
import uuid

import pytest

from tests.logging.conftest import fleet_environment
from tests.server.conftest import ROOT

# A process of the fleet (Django loaded, the fleet's logging) writing a line of the project's and one of a
# library's, the way `logging.getLogger(__name__)` does.
WRITE_TWO_LINES = """
import django, logging, structlog
django.setup()
structlog.get_logger("apps.orders.services.recovery").info("order_recovered", order_id=42, outcome="failed")
logging.getLogger("kombu.connection").warning("broker %s unreachable", "redis")
"""


def run_with(**variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WRITE_TWO_LINES],
        cwd=ROOT,
        env=fleet_environment(variables),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_json_lines_are_one_object_each_with_the_same_leading_fields():
    written = run_with(LOG_FORMAT="json")

    assert written.returncode == 0, written.stderr
    ours, library = [json.loads(line) for line in written.stdout.splitlines()]
    assert list(ours)[:4] == list(library)[:4] == ["timestamp", "level", "logger", "event"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ours["timestamp"])
    assert ours == {
        "timestamp": ours["timestamp"],
        "level": "info",
        "logger": "apps.orders.services.recovery",
        "event": "order_recovered",
        "order_id": 42,
        "correlation_id": "order-42",
        "outcome": "failed",
    }
    assert (library["level"], library["logger"], library["event"]) == (
        "warning",
        "kombu.connection",
        "broker redis unreachable",
    )


def test_plain_lines_are_readable_key_value_lines():
    written = run_with(LOG_FORMAT="plain")

    assert written.returncode == 0, written.stderr
    ours, library = written.stdout.splitlines()
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[info\s*\] order_recovered\s", ours), ours
    assert "[apps.orders.services.recovery]" in ours and "order_id=42" in ours and "correlation_id=order-42" in ours
    assert "[warning" in library and "broker redis unreachable" in library
    assert not ours.startswith("{")


def test_log_level_still_decides_and_an_unknown_format_is_refused():
    quiet = run_with(LOG_LEVEL="WARNING")
    refused = run_with(LOG_FORMAT="xml")

    assert quiet.returncode == 0, quiet.stderr
    assert [json.loads(line)["level"] for line in quiet.stdout.splitlines()] == ["warning"]
    assert refused.returncode != 0
    assert "LOG_FORMAT must be one of json, plain, not 'xml'" in refused.stderr


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("given", "kept"),
    [("req-7f3a/edge:01", True), (None, False), ("has spaces in it", False), ("x" * 129, False)],
)
def test_a_request_keeps_the_callers_request_id_if_it_looks_like_one_returns_it_and_logs_it(
    given, kept, log_lines, make_user, client_for
):
    headers = {"HTTP_X_REQUEST_ID": given} if given is not None else {}

    response = client_for(make_user()).get("/api/v1/products", **headers)

    assert response.status_code == 200
    request_id = response["X-Request-ID"]
    assert request_id == given if kept else uuid.UUID(request_id)
    [finished] = [line for line in log_lines() if line["event"] == "request_finished"]
    assert (finished["request_id"], finished["code"], finished["request"]) == (request_id, 200, "GET /api/v1/products")
