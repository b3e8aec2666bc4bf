"""Bad input never gives a 500, always gives the JSON error of docs/api.md, and never saves an order."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.coupons.models import UserCoupon
from apps.orders.models import Order, OrderItem
from tests.api import assert_error

pytestmark = pytest.mark.django_db

HUGE = 2**70


@pytest.fixture
def caller(make_user):
    return make_user(balance=1_000_000)


@pytest.fixture
def product(make_product):
    return make_product(price=1_000, stock=100)


@pytest.fixture
def refused_order(caller, client_for):
    """POSTs an order that must be refused; checks the JSON error and that no order was saved."""

    def post(payload, *, status: int = 400, code: str | None = None, **kwargs) -> dict:
        orders, items = Order.objects.count(), OrderItem.objects.count()
        kwargs.setdefault("format", "json")
        response = client_for(caller).post("/api/v1/orders", payload, **kwargs)
        body = assert_error(response, status, code)
        assert Order.objects.count() == orders
        assert OrderItem.objects.count() == items
        return body

    return post


# --- the body itself ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["{", '{"items": [', "not json at all", '{"items": [{"product_id": 1,}]}', "\x00\x01", "NaN"],
    ids=["open brace", "cut off", "plain text", "trailing comma", "binary", "nan"],
)
def test_a_body_that_is_not_json_is_a_parse_error(refused_order, raw):
    refused_order(raw, code="parse_error", format=None, content_type="application/json")


@pytest.mark.parametrize(
    "raw",
    ["[]", '[{"product_id": 1, "quantity": 1}]', '"items"', "42", "null", "true"],
    ids=["empty array", "array of items", "string", "number", "null", "bool"],
)
def test_a_json_body_that_is_not_an_object_is_a_validation_error(refused_order, raw):
    refused_order(raw, code="validation_error", format=None, content_type="application/json")


@pytest.mark.parametrize("nesting", ["[{}]", '{{"items": {}}}', '{{"items": [{{"product_id": {}, "quantity": 1}}]}}'])
def test_a_body_nested_too_deeply_for_the_json_parser_is_a_parse_error(refused_order, nesting):
    raw = nesting.format("[" * 100_000 + "]" * 100_000)
    refused_order(raw, code="parse_error", format=None, content_type="application/json")


def test_a_number_too_long_for_python_to_read_is_a_parse_error(refused_order, product):
    raw = f'{{"items": [{{"product_id": {product.pk}, "quantity": {"9" * 5_000}}}]}}'
    refused_order(raw, code="parse_error", format=None, content_type="application/json")


def test_a_body_that_is_not_utf8_is_a_parse_error(refused_order):
    refused_order(b'{"items": "\xff\xfe"}', code="parse_error", format=None, content_type="application/json")


def test_an_empty_body_is_a_validation_error(refused_order):
    body = refused_order("", code="validation_error", format=None, content_type="application/json")
    assert "items" in body["details"]["fields"]


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml"],
)
def test_a_body_that_is_not_json_by_content_type_is_refused(refused_order, product, content_type):
    raw = f'{{"items": [{{"product_id": {product.pk}, "quantity": 1}}]}}'
    refused_order(raw, status=415, code="unsupported_media_type", format=None, content_type=content_type)


# --- items --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"items": None},
        {"items": []},
        {"items": "1,2"},
        {"items": 3},
        {"items": {"product_id": 1, "quantity": 1}},
        {"items": [None]},
        {"items": [3]},
        {"items": [[1, 1]]},
        {"user_coupon_id": None},
    ],
    ids=[
        "missing",
        "null",
        "empty",
        "string",
        "number",
        "object",
        "null item",
        "number item",
        "list item",
        "only coupon",
    ],
)
def test_items_that_are_not_a_non_empty_list_of_lines_are_a_validation_error(refused_order, payload):
    body = refused_order(payload, code="validation_error")
    assert "items" in body["details"]["fields"], body


def test_more_lines_than_an_order_may_hold_are_a_validation_error(refused_order, make_product):
    items = [{"product_id": make_product(price=10).pk, "quantity": 1} for _ in range(51)]
    body = refused_order({"items": items}, code="validation_error")
    assert "items" in body["details"]["fields"], body


@pytest.mark.parametrize(
    "product_id",
    ["abc", "", None, -1, 0, 1.5, True, [1], {"id": 1}],
    ids=["string", "empty string", "null", "negative", "zero", "float", "bool", "list", "object"],
)
def test_a_bad_product_id_is_a_validation_error(refused_order, product_id):
    body = refused_order({"items": [{"product_id": product_id, "quantity": 1}]}, code="validation_error")
    assert "product_id" in body["details"]["fields"]["items"]["0"], body


def test_a_missing_product_id_is_a_validation_error(refused_order):
    body = refused_order({"items": [{"quantity": 1}]}, code="validation_error")
    assert "product_id" in body["details"]["fields"]["items"]["0"], body


@pytest.mark.parametrize("product_id", [HUGE, 2**63, 2**63 - 1], ids=["2**70", "2**63", "max bigint"])
def test_a_huge_product_id_is_an_unknown_product(refused_order, product_id):
    body = refused_order({"items": [{"product_id": product_id, "quantity": 1}]}, code="product_not_orderable")
    assert body["details"] == {"product_ids": [product_id]}


@pytest.mark.parametrize(
    "quantity",
    [0, -1, -1_000, 1_001, HUGE, 1.5, "two", "", None, True, False, [1]],
    ids=[
        "zero",
        "minus one",
        "negative",
        "over the limit",
        "huge",
        "float",
        "string",
        "empty",
        "null",
        "true",
        "false",
        "list",
    ],
)
def test_a_bad_quantity_is_a_validation_error(refused_order, product, quantity):
    body = refused_order({"items": [{"product_id": product.pk, "quantity": quantity}]}, code="validation_error")
    assert "quantity" in body["details"]["fields"]["items"]["0"], body


def test_a_missing_quantity_is_a_validation_error(refused_order, product):
    body = refused_order({"items": [{"product_id": product.pk}]}, code="validation_error")
    assert "quantity" in body["details"]["fields"]["items"]["0"], body


def test_the_same_product_over_the_line_limit_in_total_is_a_validation_error(refused_order, product):
    items = [{"product_id": product.pk, "quantity": 600}, {"product_id": product.pk, "quantity": 600}]
    refused_order({"items": items}, code="validation_error")


def test_an_order_priced_beyond_what_the_database_holds_is_a_validation_error(refused_order, make_product):
    # given: 50 lines of 1,000 units each at 2**60 won is far beyond a bigint
    items = [{"product_id": make_product(price=2**60).pk, "quantity": 1_000} for _ in range(50)]

    # then
    refused_order({"items": items}, code="validation_error")


def test_an_unknown_product_is_not_orderable(refused_order, product):
    missing_id = product.pk + 1_000
    body = refused_order(
        {"items": [{"product_id": product.pk, "quantity": 1}, {"product_id": missing_id, "quantity": 1}]},
        code="product_not_orderable",
    )
    assert body["details"] == {"product_ids": [missing_id]}


@pytest.mark.parametrize("status", ["HOLD", "STOP_SELLING"])
def test_a_product_not_on_sale_is_not_orderable(refused_order, product, make_product, status):
    held = make_product(status=status)
    body = refused_order(
        {"items": [{"product_id": product.pk, "quantity": 1}, {"product_id": held.pk, "quantity": 1}]},
        code="product_not_orderable",
    )
    assert body["details"] == {"product_ids": [held.pk]}


# --- the coupon ---------------------------------------------------------------------------------


def test_someone_elses_coupon_is_not_usable(refused_order, product, make_user, give_coupon):
    others = give_coupon(make_user())
    refused_order(
        {"items": [{"product_id": product.pk, "quantity": 1}], "user_coupon_id": others.pk}, code="coupon_not_usable"
    )
    assert UserCoupon.objects.get(pk=others.pk).status == "UNUSED"


def test_an_unknown_coupon_is_not_usable(refused_order, product, caller, give_coupon):
    missing_id = give_coupon(caller).pk + 1_000
    refused_order(
        {"items": [{"product_id": product.pk, "quantity": 1}], "user_coupon_id": missing_id}, code="coupon_not_usable"
    )


def test_a_huge_coupon_id_is_not_usable(refused_order, product):
    refused_order(
        {"items": [{"product_id": product.pk, "quantity": 1}], "user_coupon_id": HUGE}, code="coupon_not_usable"
    )


def test_an_expired_coupon_is_not_usable(refused_order, product, caller, give_coupon):
    user_coupon = give_coupon(caller)
    user_coupon.coupon.expires_at = timezone.now() - timedelta(seconds=1)
    user_coupon.coupon.save(update_fields=["expires_at"])
    refused_order(
        {"items": [{"product_id": product.pk, "quantity": 1}], "user_coupon_id": user_coupon.pk},
        code="coupon_not_usable",
    )


def test_a_full_discount_leaving_nothing_to_pay_is_refused(refused_order, product, caller, give_coupon):
    user_coupon = give_coupon(caller, rate="1")
    refused_order(
        {"items": [{"product_id": product.pk, "quantity": 1}], "user_coupon_id": user_coupon.pk},
        code="validation_error",
    )


@pytest.mark.parametrize(
    "user_coupon_id",
    ["abc", "", 0, -1, 1.5, True, [1], {"id": 1}],
    ids=["string", "empty", "zero", "negative", "float", "bool", "list", "object"],
)
def test_a_bad_user_coupon_id_is_a_validation_error(refused_order, product, user_coupon_id):
    body = refused_order(
        {"items": [{"product_id": product.pk, "quantity": 1}], "user_coupon_id": user_coupon_id},
        code="validation_error",
    )
    assert "user_coupon_id" in body["details"]["fields"], body


# --- what is accepted ---------------------------------------------------------------------------


def test_unknown_fields_are_ignored(caller, client_for, product):
    # given
    payload = {
        "items": [{"product_id": product.pk, "quantity": 2, "unit_price": 1, "discount": 999}],
        "user_coupon_id": None,
        "user_id": caller.pk + 1,
        "total_price": 1,
        "status": "COMPLETED",
    }

    # when
    response = client_for(caller).post("/api/v1/orders", payload, format="json")

    # then
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["user_id"] == caller.pk
    assert body["status"] == "CREATED"
    assert body["items"] == [{"product_id": product.pk, "quantity": 2, "unit_price": 1_000}]
    assert body["total_price"] == 2_000
    assert Order.objects.get().user_id == caller.pk


# --- URLs and methods ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/",
        "/api/v1/nothing",
        "/api/v1/orders/",
        "/api/v1/orders/abc",
        "/api/v1/orders/-1",
        "/api/v1/products/1",
        "/api/v1/users/me/balance",
        "/api/v2/orders",
    ],
)
@pytest.mark.parametrize("authenticated", [True, False], ids=["with token", "without token"])
def test_an_unknown_url_is_a_json_404(caller, client_for, path, authenticated):
    # given
    client = client_for(caller) if authenticated else APIClient()

    # when
    response = client.get(path)

    # then
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/products"),
        ("delete", "/api/v1/products"),
        ("put", "/api/v1/products/ranks"),
        ("post", "/api/v1/users/{user_id}/balance"),
        ("get", "/api/v1/users/{user_id}/balance/charge"),
        ("delete", "/api/v1/users/{user_id}/coupons"),
        ("get", "/api/v1/users/{user_id}/coupons/issue"),
        ("put", "/api/v1/orders"),
        ("patch", "/api/v1/orders"),
        ("delete", "/api/v1/orders/{order_id}"),
        ("post", "/api/v1/orders/{order_id}"),
    ],
)
def test_a_wrong_method_is_a_json_405(caller, client_for, product, method, path):
    # given
    client = client_for(caller)
    order = client.post("/api/v1/orders", {"items": [{"product_id": product.pk, "quantity": 1}]}, format="json")
    assert order.status_code == 201, order.json()
    orders = Order.objects.count()

    # when
    url = path.format(user_id=caller.pk, order_id=order.json()["id"])
    response = getattr(client, method)(url, {}, format="json")

    # then
    assert_error(response, 405, "method_not_allowed")
    assert "Allow" in response
    assert Order.objects.count() == orders


@pytest.mark.parametrize("order_id", [2**63 - 1, 2**63, HUGE, 10**40], ids=["max bigint", "2**63", "2**70", "10**40"])
def test_a_huge_order_id_in_the_path_is_a_json_404(caller, client_for, order_id):
    assert_error(client_for(caller).get(f"/api/v1/orders/{order_id}"), 404, "not_found")


@pytest.mark.parametrize("user_id", [2**63, HUGE, 10**40], ids=["2**63", "2**70", "10**40"])
def test_a_huge_user_id_in_the_path_is_refused_without_a_500(caller, make_user, client_for, user_id):
    # a normal user may not act for another user id, and staff finds no such user
    assert_error(client_for(caller).get(f"/api/v1/users/{user_id}/balance"), 403, "permission_denied")
    staff = client_for(make_user(staff=True))
    assert_error(staff.get(f"/api/v1/users/{user_id}/balance"), 404, "not_found")
    assert_error(staff.post(f"/api/v1/users/{user_id}/balance/charge", {"amount": 1}, format="json"), 404, "not_found")
    assert_error(staff.get(f"/api/v1/users/{user_id}/coupons"), 404, "not_found")


@pytest.mark.parametrize(
    "path", ["/api/v1/orders/" + "9" * 5_000, "/api/v1/users/" + "9" * 5_000 + "/balance"], ids=["order", "user"]
)
def test_an_id_too_long_for_python_to_read_is_a_json_404(caller, client_for, path):
    assert_error(client_for(caller).get(path), 404, "not_found")


def test_a_request_for_a_host_not_served_is_a_json_400(caller, client_for):
    assert_error(client_for(caller).get("/api/v1/products", HTTP_HOST="evil.example"), 400, "bad_request")


@pytest.mark.parametrize(
    "raw",
    [
        '{"items": "\\ud800"}',
        '{"\\udfff": 1, "items": []}',
        '{"items": [{"product_id": 1, "quantity": 1}], "x": "\\ud83d"}',
    ],
    ids=["value", "key", "beside a valid body"],
)
@pytest.mark.parametrize("key", [None, "lone-surrogate"], ids=["without key", "with Idempotency-Key"])
def test_a_string_with_a_lone_surrogate_is_a_parse_error(refused_order, raw, key):
    # valid JSON grammar, but not Unicode text: it cannot be hashed for the Idempotency-Key, stored or answered
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    refused_order(raw, code="parse_error", format=None, content_type="application/json", **headers)


def test_an_escaped_surrogate_pair_is_read_as_its_character(caller, client_for, product):
    raw = f'{{"items": [{{"product_id": {product.pk}, "quantity": 1}}], "note": "\\ud83d\\ude00"}}'
    response = client_for(caller).post("/api/v1/orders", raw, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 201, response.json()
