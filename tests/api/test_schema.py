"""The OpenAPI document (docs/api.md, Operations: GET /api/schema/ and /api/docs/): valid, warning-free, served
to anyone, and saying exactly what docs/api.md says of every endpoint."""

import re
from html.parser import HTMLParser

import pytest
import yaml
from django.core.management import call_command
from django.urls import resolve
from drf_spectacular.drainage import GENERATOR_STATS
from rest_framework.permissions import AllowAny
from rest_framework.test import APIClient

from common.participants import step_names

# Every operation of docs/api.md, Endpoints, with every status it may answer: its own, then 400 (a Host not
# served), 401, 406, 413 and 500 that every operation may give, and for the four POSTs with an
# Idempotency-Key 409, 415, 422 and 429.
EVERY_OPERATION = {400, 401, 406, 413, 500}
KEYED_POST = EVERY_OPERATION | {409, 415, 422, 429}
OPERATIONS = {
    ("get", "/api/v1/products"): {200} | EVERY_OPERATION,
    ("get", "/api/v1/products/ranks"): {200} | EVERY_OPERATION,
    ("get", "/api/v1/users/{user_id}/balance"): {200, 403, 404} | EVERY_OPERATION,
    ("post", "/api/v1/users/{user_id}/balance/charge"): {200, 403, 404} | KEYED_POST,
    ("get", "/api/v1/users/{user_id}/coupons"): {200, 403, 404} | EVERY_OPERATION,
    ("post", "/api/v1/users/{user_id}/coupons/issue"): {201, 202, 403, 404} | KEYED_POST,
    ("post", "/api/v1/orders"): {201} | KEYED_POST,
    ("get", "/api/v1/orders"): {200, 404} | EVERY_OPERATION,
    ("get", "/api/v1/orders/{order_id}"): {200, 404} | EVERY_OPERATION,
    ("post", "/api/v1/orders/{order_id}/cancel"): {202, 404} | KEYED_POST,
    ("get", "/api/v1/orders/{order_id}/history"): {200, 403, 404} | EVERY_OPERATION,
    # the probes are open: no 401
    ("get", "/healthz"): {200} | EVERY_OPERATION - {401},
    ("get", "/readyz"): {200, 503} | EVERY_OPERATION - {401},
    # open unless METRICS_TOKEN is set, then a 401 without `Authorization: Bearer <token>` (no user's key)
    ("get", "/metrics"): {200} | EVERY_OPERATION,
}
OPEN = [("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics")]
KEYED = [operation for operation, statuses in OPERATIONS.items() if 422 in statuses]
AUTHENTICATED = [operation for operation, statuses in OPERATIONS.items() if 401 in statuses and operation not in OPEN]
READINESS_ANSWERS = {("get", "/readyz", 503)}  # not ready is an answer of its own shape, naming what failed
ERROR = {"$ref": "#/components/schemas/Error"}


@pytest.fixture(scope="module")
def schema() -> dict:
    response = APIClient().get("/api/schema/?format=json")
    assert response.status_code == 200, response.content[:500]
    return response.json()


def operation_of(schema: dict, method: str, path: str) -> dict:
    return schema["paths"][path][method]


def test_the_schema_is_valid_openapi_and_made_without_a_warning(tmp_path):
    GENERATOR_STATS.reset()  # judge this generation alone, not warnings an earlier one in the process left
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert yaml.safe_load((tmp_path / "schema.yaml").read_text())["openapi"].startswith("3.")


def test_the_schema_lists_every_operation_of_the_api_with_every_status_it_answers(schema):
    served = {
        (method, path): set(map(int, operation["responses"]))
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    }
    assert served == OPERATIONS


def test_every_error_answer_is_the_error_shape(schema):
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["code", "message"]
    assert set(error["properties"]) == {"code", "message", "details"}
    for (method, path), statuses in OPERATIONS.items():
        responses = operation_of(schema, method, path)["responses"]
        for status in statuses:
            if status >= 400 and (method, path, status) not in READINESS_ANSWERS:
                assert responses[str(status)]["content"]["application/json"]["schema"] == ERROR, (method, path, status)
    readiness = operation_of(schema, "get", "/readyz")["responses"]
    assert readiness["503"]["content"] == readiness["200"]["content"]


def test_every_operation_needs_a_token_and_the_scheme_says_token(schema):
    ((name, scheme),) = schema["components"]["securitySchemes"].items()
    assert scheme == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": 'Token-based authentication with required prefix "Token"',
    }
    for method, path in AUTHENTICATED:
        operation = operation_of(schema, method, path)
        assert operation["security"] == [{name: []}], (method, path)
        assert operation["responses"]["401"]["headers"]["WWW-Authenticate"]["required"] is True
    for method, path in OPEN:  # the probes are open, and /metrics unless its own token is set
        assert operation_of(schema, method, path).get("security", []) in ([], [{}]), path
    assert operation_of(schema, "get", "/metrics")["responses"]["401"]["headers"]["WWW-Authenticate"]["required"]


def test_a_throttled_answer_says_when_to_come_back(schema):
    for method, path in KEYED:
        retry_after = operation_of(schema, method, path)["responses"]["429"]["headers"]["Retry-After"]
        assert retry_after["required"] is True
        assert retry_after["schema"] == {"type": "integer", "minimum": 1}


@pytest.mark.parametrize(("method", "path"), KEYED, ids=[f"{method} {path}" for method, path in KEYED])
def test_the_four_keyed_posts_take_an_idempotency_key_and_say_when_they_replay(schema, method, path):
    operation = operation_of(schema, method, path)
    headers = {parameter["name"]: parameter for parameter in operation["parameters"] if parameter["in"] == "header"}
    assert set(headers) == {"Idempotency-Key", "X-Request-ID"}  # the request id: every operation's
    key = headers["Idempotency-Key"]
    assert key.get("required", False) is False
    assert key["schema"]["minLength"] == 1 and key["schema"]["maxLength"] == 255
    success = min(status for status in OPERATIONS[(method, path)] if status < 300)
    assert operation["responses"][str(success)]["headers"]["Idempotent-Replayed"]["schema"]["enum"] == ["true"]
    assert "idempotency_key_in_use" in operation["responses"]["409"]["description"]
    assert "idempotency_key_reused" in operation["responses"]["422"]["description"]


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("k", True),
        ("~", True),
        ("a b", True),
        ("x" * 255, True),
        ("", False),
        ("x" * 256, False),
        (" k", False),
        ("k ", False),
        ("ké", False),
        ("k\tk", False),
    ],
)
def test_the_idempotency_key_pattern_matches_what_the_api_takes(schema, key, valid):
    operation = operation_of(schema, "post", "/api/v1/orders")
    (parameter,) = [parameter for parameter in operation["parameters"] if parameter["name"] == "Idempotency-Key"]
    rule = parameter["schema"]
    fits = rule["minLength"] <= len(key) <= rule["maxLength"] and re.search(rule["pattern"], key) is not None
    assert fits is valid


def test_nested_lists_state_their_bounds(schema, settings):
    components = schema["components"]["schemas"]
    items = components["OrderCreateRequest"]["properties"]["items"]
    assert (items["minItems"], items["maxItems"]) == (1, settings.MAX_ORDER_LINES)
    quantity = components["OrderLineRequest"]["properties"]["quantity"]
    assert (quantity["minimum"], quantity["maximum"]) == (1, settings.MAX_LINE_QUANTITY)
    for path in ["/api/v1/orders/{order_id}", "/api/v1/users/{user_id}/balance"]:
        (parameter,) = [p for p in operation_of(schema, "get", path)["parameters"] if p["in"] == "path"]
        assert parameter["schema"] == {"type": "integer", "minimum": 1}


@pytest.mark.django_db
def test_the_order_schema_is_the_order_the_api_answers(schema, make_user, make_product, place_order, client_for):
    # given an order, as the API shows it
    user = make_user(balance=100_000)
    order_id = place_order(user, [(make_product().pk, 1)])
    answered = client_for(user).get(f"/api/v1/orders/{order_id}").json()

    # then the schema names exactly its fields, every one required
    components = schema["components"]["schemas"]
    order = components["Order"]
    assert set(order["properties"]) == set(answered) == set(order["required"])
    assert set(components["OrderSteps"]["properties"]) == set(answered["steps"]) == set(step_names())
    assert components["StepStatusEnum"]["enum"] == ["PENDING", "SUCCESS", "FAILED"]
    assert components["OrderStatusEnum"]["enum"] == ["CREATED", "PAYMENT_WAITING", "COMPLETED", "FAILED", "CANCELED"]
    assert components["PaymentStatusEnum"]["enum"] == ["READY", "COMPLETED", "FAILED", "CANCELED"]
    assert set(components["OrderPayment"]["properties"]) == {"id", "status", "amount"}
    for nullable in ["failure_reason", "user_coupon_id", "payment", "completed_at", "canceled_at"]:
        assert order["properties"][nullable]["nullable"] is True, nullable
    assert set(components["OrderPage"]["required"]) == {"count", "next", "previous", "results"}


@pytest.mark.parametrize(
    ("url", "content_type"),
    [("/api/schema/", "application/vnd.oai.openapi"), ("/api/schema/?format=json", "application/vnd.oai.openapi+json")],
)
def test_the_schema_is_served_to_anyone_even_with_a_bad_token(db, url, content_type):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-key")
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith(content_type)


@pytest.mark.parametrize("url", ["/api/schema/", "/api/docs/"])
def test_the_schema_and_the_docs_have_no_authentication_nor_throttling(url):
    view = resolve(url).func
    assert view.cls.authentication_classes == []
    assert view.cls.permission_classes == [AllowAny]
    assert view.initkwargs["throttle_classes"] == []


class _Assets(HTMLParser):
    """The scripts, styles and icons a page loads."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script" and attributes.get("src"):
            self.urls.append(attributes["src"])
        if tag == "link" and attributes.get("href"):
            self.urls.append(attributes["href"])


def test_the_docs_load_every_asset_from_the_application_itself(db):
    client = APIClient()
    page = client.get("/api/docs/")
    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/html")
    assets = _Assets()
    assets.feed(page.content.decode())
    assert len(assets.urls) >= 3, assets.urls  # Swagger UI's bundle, its preset and its stylesheet at least
    for url in assets.urls:
        assert url.startswith("/static/"), url
        assert client.get(url).status_code == 200, url


def test_every_answer_says_its_request_id_and_the_schema_says_so(schema, client):
    pattern = re.compile(
        schema["paths"]["/healthz"]["get"]["responses"]["200"]["headers"]["X-Request-ID"]["schema"]["pattern"]
    )
    for (method, path), statuses in OPERATIONS.items():
        operation = operation_of(schema, method, path)
        assert "X-Request-ID" in {parameter["name"] for parameter in operation["parameters"]}, (method, path)
        for status in statuses:
            assert operation["responses"][str(status)]["headers"]["X-Request-ID"]["required"], (method, path, status)
    given = client.get("/healthz", HTTP_X_REQUEST_ID="ticket-42")
    made = client.get("/healthz", HTTP_X_REQUEST_ID="not an id")
    assert given["X-Request-ID"] == "ticket-42"
    assert pattern.fullmatch(made["X-Request-ID"]) and made["X-Request-ID"] != "not an id"
