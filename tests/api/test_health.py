"""Liveness and readiness (docs/api.md, "Operations"): open, JSON, and a failing dependency named."""

import pytest
from celery import current_app
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

NOBODY_LISTENS = "redis://127.0.0.1:6390/0"  # a port with no Redis on it: refused at once


def test_healthz_answers_without_authentication():
    response = APIClient().get("/healthz")

    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_checks_the_database_redis_and_the_broker():
    response = APIClient().get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok", "broker": "ok"}}


def test_readyz_is_503_and_names_redis_when_redis_does_not_answer(settings):
    settings.REDIS_URL = NOBODY_LISTENS

    response = APIClient().get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok" and body["checks"]["broker"] == "ok"
    assert body["checks"]["redis"].startswith("ConnectionError")


def test_readyz_is_503_and_names_the_broker_when_it_does_not_answer(monkeypatch):
    monkeypatch.setattr(current_app.conf, "broker_url", "amqp://guest:guest@127.0.0.1:5999//")

    response = APIClient().get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["redis"] == "ok"
    assert response.json()["checks"]["broker"] != "ok"
