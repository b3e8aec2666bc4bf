"""The body limit inside the application: the middleware answers 413 from Content-Length before anything
reads the body; a body Django refuses itself (RequestDataTooBig) is the same 413, not a 500."""

import json

import pytest


@pytest.fixture
def client(client_for, make_user):
    return client_for(make_user(balance=1_000_000))


def order_body(size: int) -> str:
    body = json.dumps({"items": [], "user_coupon_id": None})
    return body + " " * (size - len(body))


def test_a_body_over_the_limit_is_413_before_the_api_reads_it(client, settings):
    settings.API_MAX_BODY_BYTES = 1_000

    response = client.post("/api/v1/orders", order_body(1_001), content_type="application/json")

    assert response.status_code == 413
    assert response.json() == {
        "code": "request_too_large",
        "message": "The request body may be at most 1,000 bytes.",
        "details": {"max_bytes": 1_000},
    }


def test_a_body_django_refuses_as_too_big_is_413_not_500(client, settings):
    # given a body the middleware lets in but Django's own limit refuses when the API reads it
    settings.API_MAX_BODY_BYTES = 10_000
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000

    response = client.post("/api/v1/orders", order_body(2_000), content_type="application/json")

    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"
    assert response.json()["details"] == {"max_bytes": 1_000}


def test_a_body_at_the_limit_reaches_the_api(client, settings):
    settings.API_MAX_BODY_BYTES = 1_000

    response = client.post("/api/v1/orders", order_body(1_000), content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
