"""GET /metrics (docs/api.md, "Operations"): Prometheus' text format, open unless METRICS_TOKEN is set,
errors in the API's JSON shape, and an app whose gauges cannot be read does not cost the others theirs."""

import time

import pytest
from django.db import connection
from prometheus_client import values
from rest_framework.test import APIClient

from common.metrics.scrape import SCRAPE_STATEMENT_TIMEOUT_MS
from tests.metrics.conftest import parse

pytestmark = pytest.mark.django_db

TOKEN = "a-scraper-token-0123456789"


def test_the_tests_count_as_the_fleet_does_in_files_every_process_shares():
    assert values.ValueClass.__name__ == "MmapedValue", "PROMETHEUS_MULTIPROC_DIR was set after prometheus-client"


def test_metrics_are_open_and_in_prometheus_text_format_when_no_token_is_set(settings):
    settings.METRICS_TOKEN = None

    response = APIClient().get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    scraped = parse(response.content.decode())
    for outcome in ("completed", "failed", "canceled"):
        assert scraped.has("saga_orders_total", outcome=outcome)
    for gauge in ("saga_orders_in_flight", "saga_orders_past_deadline", "outbox_pending", "outbox_parked"):
        assert scraped.has(gauge), gauge
    assert scraped.value("metrics_collector_up", app="orders") == 1
    assert scraped.value("metrics_collector_up", app="eventbus") == 1


def test_a_users_api_key_is_not_needed_nor_in_the_way(settings, make_user, client_for):
    settings.METRICS_TOKEN = None

    assert client_for(make_user()).get("/metrics").status_code == 200


def test_with_a_token_set_a_scrape_without_it_is_a_401_in_the_error_shape(settings):
    settings.METRICS_TOKEN = TOKEN

    response = APIClient().get("/metrics")

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (f"Bearer {TOKEN}x", "authentication_failed"),
        (f"Bearer {TOKEN[:-1]}", "authentication_failed"),
        ("Bearer ", "authentication_failed"),
        (f"Token {TOKEN}", "not_authenticated"),
        (TOKEN, "not_authenticated"),
    ],
)
def test_with_a_token_set_any_other_credential_is_a_401(settings, authorization, code):
    settings.METRICS_TOKEN = TOKEN

    response = APIClient().get("/metrics", HTTP_AUTHORIZATION=authorization)

    assert response.status_code == 401
    assert response.json()["code"] == code


def test_with_a_token_set_the_bearer_of_it_gets_the_metrics(settings):
    settings.METRICS_TOKEN = TOKEN

    response = APIClient().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 200
    assert parse(response.content.decode()).has("saga_orders_in_flight")


def test_prometheus_accept_header_gets_the_text_format_and_a_client_wanting_only_json_a_406(settings):
    settings.METRICS_TOKEN = None
    prometheus = "application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

    assert APIClient().get("/metrics", HTTP_ACCEPT=prometheus).status_code == 200
    refused = APIClient().get("/metrics", HTTP_ACCEPT="application/json")
    assert refused.status_code == 406 and refused.json()["code"] == "not_acceptable"


def test_a_method_other_than_get_is_a_405_in_json():
    response = APIClient().post("/metrics", {}, format="json")

    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_an_app_whose_gauges_fail_is_reported_down_and_the_others_are_still_read(monkeypatch, scrape):
    def broken():
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table")  # aborts its savepoint, not the scrape's transaction
        yield from ()

    monkeypatch.setattr("apps.orders.metrics.collect", broken)

    scraped = scrape()

    assert scraped.value("metrics_collector_up", app="orders") == 0
    assert not scraped.has("saga_orders_in_flight")
    assert scraped.value("metrics_collector_up", app="eventbus") == 1
    assert scraped.has("outbox_pending")
    assert scraped.has("saga_orders_total", outcome="completed")  # the processes' counters are still there


@pytest.mark.django_db(transaction=True)
def test_a_query_too_slow_for_a_scrape_is_cut_off_and_the_scrape_still_answers(monkeypatch, scrape):
    def slow():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(20)")
        yield from ()

    monkeypatch.setattr("apps.orders.metrics.collect", slow)

    started = time.monotonic()
    scraped = scrape()

    assert time.monotonic() - started < SCRAPE_STATEMENT_TIMEOUT_MS / 1000 + 3
    assert scraped.value("metrics_collector_up", app="orders") == 0
    assert scraped.value("metrics_collector_up", app="eventbus") == 1


def test_the_schema_documents_the_metrics_as_text_and_every_error_as_json():
    responses = APIClient().get("/api/schema/?format=json").json()["paths"]["/metrics"]["get"]["responses"]

    assert set(responses["200"]["content"]) == {"text/plain"}
    for status in ("400", "401", "406", "413", "500"):
        assert set(responses[status]["content"]) == {"application/json"}, status
    assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True
