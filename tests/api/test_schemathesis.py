"""schemathesis against the served OpenAPI document (/api/schema/): requests made from the schema (valid
and invalid ones), sent to the in-process WSGI application as a real user, every answer checked against
the schema. Any failure is a bug of the API or of its schema; never loosen the schema to make one pass.

Seeded (derandomize) and bounded (MAX_EXAMPLES per operation and phase), with Hypothesis' database off:
the same cases on every run. After the module the terminal shows how many examples each operation ran and
the statuses they got; `test_every_operation_was_fuzzed` fails if an operation ran fewer than a floor.
"""

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from apps.accounts.services import api_key_issue
from apps.orders.services import OrderLineInput, order_complete, order_create, order_record_step
from apps.payments.services import payment_pay
from config.wsgi import application
from idempotency.decorators import HEADER as IDEMPOTENCY_KEY
from idempotency.decorators import MAX_KEY_LENGTH
from tests.participants import record_every_step

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = 100
MIN_EXAMPLES_PER_OPERATION = 50

# positive_data_acceptance is left out: business rules the schema cannot state refuse schema-valid
# requests (another user's id is 403, an id that does not exist 404, an unknown product or a coupon
# already held 400, an order already ended 409), each of those answers documented and checked here.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    ignored_auth,  # the same request without the token, or with a wrong one, is refused
    unsupported_method,  # a method the schema does not list is 405 with Allow
    allow_header_conformance,  # OPTIONS' Allow lists exactly the documented methods
]

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)

operations_started: set[str] = set()  # test items (one per operation) that ran
examples_run: Counter[str] = Counter()  # operation label: examples sent
statuses_seen: dict[str, Counter[int]] = {}  # operation label: how often each status came back


@dataclass(frozen=True)
class Shop:
    """The fuzzed user's key and the ids that exist, by parameter name."""

    token: str
    ids: dict[str, list[int]]


# The current test's shop, for the generation hooks below (they cannot take fixtures).
shop: Shop | None = None


# --- Steering: random ids rarely exist, so some valid ids are swapped for real ones -------------------


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _known(name: str) -> list[int]:
    return shop.ids.get(name, []) if shop else []


def _maybe_known(value: object, name: str) -> st.SearchStrategy:
    """The generated value or, if it is a valid id, one of the ids of `name` that exist."""
    return st.sampled_from([value, *_known(name)]) if _is_id(value) and _known(name) else st.just(value)


def _steered(mapping: dict, names: tuple[str, ...]) -> st.SearchStrategy:
    return st.fixed_dictionaries(
        {name: _maybe_known(value, name) if name in names else st.just(value) for name, value in mapping.items()}
    )


def _lines(items: list) -> st.SearchStrategy:
    """Order lines: each product id as generated or a real one, or all of them real ones."""
    each = st.tuples(*(_steered(line, ("product_id",)) if isinstance(line, dict) else st.just(line) for line in items))
    products = _known("product_id")
    if not products or not all(isinstance(line, dict) and _is_id(line.get("product_id")) for line in items):
        return each.map(list)
    all_real = st.tuples(
        *(st.sampled_from(products).map(lambda pid, line=line: {**line, "product_id": pid}) for line in items)
    )
    return st.one_of(each, all_real).map(list)


@schema.hook
def flatmap_path_parameters(context, path_parameters: dict | None) -> st.SearchStrategy:
    if not path_parameters:
        return st.just(path_parameters)
    return _steered(path_parameters, ("user_id", "order_id"))


@schema.hook
def flatmap_body(context, body: object) -> st.SearchStrategy:
    if not isinstance(body, dict):
        return st.just(body)
    steered = _steered(body, ("coupon_id", "user_coupon_id"))
    if not isinstance(body.get("items"), list):
        return steered
    return st.tuples(steered, _lines(body["items"])).map(lambda parts: {**parts[0], "items": parts[1]})


def _spread_idempotency_key(case, number: int) -> None:
    """schemathesis sends the same few Idempotency-Keys again and again (its coverage phase always "0"),
    and a key repeated with another body is 422 before anything else is looked at: keep every third key
    as generated (replays and 422s), make the others unique so that their requests are processed."""
    key = (case.headers or {}).get(IDEMPOTENCY_KEY)
    if isinstance(key, str) and key and number % 3:
        case.headers[IDEMPOTENCY_KEY] = f"{number}-{key}"[:MAX_KEY_LENGTH].rstrip()


# --- The fuzzed user's shop ----------------------------------------------------------------------------


def _paid_order(user, product, *, complete: bool) -> int:
    """An order whose steps succeeded and whose payment went through: COMPLETED, or still PAYMENT_WAITING."""
    order = order_create(user_id=user.pk, lines=[OrderLineInput(product_id=product.pk, quantity=1)])
    record_every_step(order)
    payment_pay(order_id=order.pk, user_id=user.pk, amount=order.total_price)
    if complete:
        order_complete(order_id=order.pk)
    return order.pk


@pytest.fixture
def fuzzed_shop(request, make_user, make_product, make_coupon, give_coupon) -> Iterator[Shop]:
    """A user with a balance, a coupon held and one to claim, products on sale and held, and orders
    CREATED, FAILED, PAYMENT_WAITING (paid) and COMPLETED."""
    global shop
    operations_started.add(request.node.name)
    user = make_user(balance=1_000_000)
    on_sale = [make_product(price=1_000, stock=1_000) for _ in range(3)]
    held = make_product(status="HOLD")
    user_coupon = give_coupon(user, rate="0.1", quantity=100)
    with transaction.atomic():
        created = order_create(user_id=user.pk, lines=[OrderLineInput(product_id=on_sale[0].pk, quantity=2)])
        failed = order_create(user_id=user.pk, lines=[OrderLineInput(product_id=on_sale[1].pk, quantity=1)])
        order_record_step(order_id=failed.pk, step="stock", succeeded=False, reason="insufficient stock")
    paid = [_paid_order(user, on_sale[2], complete=complete) for complete in (False, True)]
    shop = Shop(
        token=api_key_issue(user=user),
        ids={
            "user_id": [user.pk],
            "order_id": [created.pk, failed.pk, *paid],
            "product_id": [product.pk for product in [*on_sale, held]],
            "coupon_id": [make_coupon(quantity=1_000).pk, user_coupon.coupon_id],
            "user_coupon_id": [user_coupon.pk],
        },
    )
    yield shop
    shop = None


@pytest.fixture(autouse=True)
def connection_kept_across_requests() -> Iterator[None]:
    """The WSGI application closes the database connection around each request, which would end the
    test's transaction: keep it open, as Django's test client does."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(scope="module", autouse=True)
def report_examples(request) -> Iterator[None]:
    """After the module: how many examples each operation ran, and the statuses they got, on the terminal
    (past pytest's output capture, so that a passing run shows it too)."""
    yield
    if not examples_run:
        return
    lines = [f"schemathesis: {sum(examples_run.values())} examples over {len(examples_run)} operations"]
    for label, count in sorted(examples_run.items()):
        seen = ", ".join(f"{status}×{times}" for status, times in sorted(statuses_seen[label].items()))
        lines.append(f"  {count:5d}  {label}  ({seen})")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print("\n".join(lines))
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line)


# --- The tests ------------------------------------------------------------------------------------------


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    # The shop is made once per operation and shared by its examples, on purpose.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_answer_conforms_to_the_schema(case, fuzzed_shop):
    examples_run[case.operation.label] += 1
    _spread_idempotency_key(case, examples_run[case.operation.label])
    response = case.call_and_validate(headers={"Authorization": f"Token {fuzzed_shop.token}"}, checks=CHECKS)
    statuses_seen.setdefault(case.operation.label, Counter())[response.status_code] += 1


def test_every_operation_was_fuzzed():
    """After the fuzzing (pytest runs a module's tests in order): no operation silently ran (almost) nothing."""
    operations = {result.ok().label for result in schema.get_all_operations()}
    if len(operations_started) < len(operations):
        pytest.skip("not every operation's fuzzing test was selected")
    assert set(examples_run) == operations
    # the probes and /metrics take no parameter and no key: there are only a few requests to make of them
    probes = {"GET /healthz", "GET /readyz", "GET /metrics"}
    assert all(examples_run[label] >= 1 for label in probes), examples_run
    others = [n for label, n in examples_run.items() if label not in probes]
    assert min(others) >= MIN_EXAMPLES_PER_OPERATION, examples_run


# --- Answers random requests never provoke, checked against the schema all the same -----------------

ORDER = {"items": [{"product_id": 1, "quantity": 1}], "user_coupon_id": None}


def _checked(shop: Shop, path: str, method: str, *, checks: list = CHECKS, **case) -> int:
    operation = schema[path][method]
    headers = {"Authorization": f"Token {shop.token}", **case.pop("headers", {})}
    response = operation.Case(**case).call_and_validate(headers=headers, checks=checks)
    return response.status_code


def test_an_accept_header_without_json_is_a_documented_406(fuzzed_shop):
    status = _checked(fuzzed_shop, "/api/v1/products", "GET", headers={"Accept": "application/xml"})
    assert status == 406


def test_a_host_not_served_is_a_documented_400(fuzzed_shop):
    status = _checked(fuzzed_shop, "/api/v1/products", "GET", headers={"Host": "evil.example"})
    assert status == 400


def test_a_body_over_the_limit_is_a_documented_413(fuzzed_shop, settings):
    settings.API_MAX_BODY_BYTES = 16
    assert _checked(fuzzed_shop, "/api/v1/orders", "POST", body=ORDER) == 413


def test_a_client_over_its_rate_is_a_documented_429_with_retry_after(fuzzed_shop, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "order_create": "1/hour"},
    }
    statuses = [_checked(fuzzed_shop, "/api/v1/orders", "POST", body=ORDER) for _ in range(2)]
    assert statuses[1] == 429


def test_a_server_error_is_the_documented_500(fuzzed_shop, monkeypatch):
    def broken():
        raise RuntimeError("a bug")

    monkeypatch.setattr("apps.products.apis.selling_products", broken)
    without_5xx_check = [check for check in CHECKS if check is not not_a_server_error]
    assert _checked(fuzzed_shop, "/api/v1/products", "GET", checks=without_5xx_check) == 500
