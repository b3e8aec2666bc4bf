"""Authentication and ownership: who may call what (docs/api.md, Authentication)."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from apps.balance.selectors import balance_of
from apps.coupons.models import UserCoupon
from tests.api import assert_error

pytestmark = pytest.mark.django_db

# Every endpoint of docs/api.md, with a body good enough that only authentication can refuse it.
ENDPOINTS = [
    ("get", "/api/v1/products", None),
    ("get", "/api/v1/products/ranks", None),
    ("get", "/api/v1/users/{user_id}/balance", None),
    ("post", "/api/v1/users/{user_id}/balance/charge", {"amount": 1_000}),
    ("get", "/api/v1/users/{user_id}/coupons", None),
    ("post", "/api/v1/users/{user_id}/coupons/issue", {"coupon_id": 1}),
    ("post", "/api/v1/orders", {"items": [{"product_id": 1, "quantity": 1}], "user_coupon_id": None}),
    ("get", "/api/v1/orders/{order_id}", None),
    ("get", "/api/v1/orders", None),
    ("post", "/api/v1/orders/{order_id}/cancel", None),
]
ENDPOINT_IDS = [f"{method} {path}" for method, path, _ in ENDPOINTS]


def call(client: APIClient, method: str, path: str, body: dict | None, *, user_id: int, order_id: int = 1):
    url = path.format(user_id=user_id, order_id=order_id)
    if body is None:
        return getattr(client, method)(url)
    return getattr(client, method)(url, body, format="json")


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_every_endpoint_refuses_a_call_without_a_token(make_user, method, path, body):
    # given
    user = make_user(balance=5_000)

    # when
    response = call(APIClient(), method, path, body, user_id=user.pk)

    # then
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Token")
    assert balance_of(user_id=user.pk) == 5_000


@pytest.mark.parametrize(
    "authorization",
    ["Token not-a-real-key-0123456789abcdef01234567", "Token", "Token two words", "Bearer abc"],
    ids=["unknown key", "no key", "key with spaces", "other scheme"],
)
@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=ENDPOINT_IDS)
def test_every_endpoint_refuses_a_bad_token(make_user, method, path, body, authorization):
    # given
    user = make_user(balance=5_000)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=authorization)

    # when
    response = call(client, method, path, body, user_id=user.pk)

    # then
    assert_error(response, 401)
    assert balance_of(user_id=user.pk) == 5_000


def test_the_token_of_a_deactivated_user_is_refused(make_user, client_for):
    # given
    user = make_user()
    client = client_for(user)
    user.is_active = False
    user.save(update_fields=["is_active"])

    # when
    response = client.get(f"/api/v1/users/{user.pk}/balance")

    # then
    assert_error(response, 401, "authentication_failed")


def test_a_user_may_not_read_someone_elses_balance(make_user, client_for):
    # given
    caller, other = make_user(), make_user(balance=7_000)

    # when
    response = client_for(caller).get(f"/api/v1/users/{other.pk}/balance")

    # then
    assert_error(response, 403, "permission_denied")


def test_a_user_may_not_charge_someone_elses_balance(make_user, client_for):
    # given
    caller, other = make_user(balance=1_000), make_user(balance=7_000)

    # when
    response = client_for(caller).post(f"/api/v1/users/{other.pk}/balance/charge", {"amount": 500}, format="json")

    # then
    assert_error(response, 403, "permission_denied")
    assert balance_of(user_id=other.pk) == 7_000
    assert balance_of(user_id=caller.pk) == 1_000


def test_a_user_may_not_list_someone_elses_coupons(make_user, give_coupon, client_for):
    # given
    caller, other = make_user(), make_user()
    give_coupon(other)

    # when
    response = client_for(caller).get(f"/api/v1/users/{other.pk}/coupons")

    # then
    assert_error(response, 403, "permission_denied")


def test_a_user_may_not_issue_a_coupon_to_someone_else(make_user, make_coupon, client_for):
    # given
    caller, other = make_user(), make_user()
    coupon = make_coupon(quantity=5)

    # when
    response = client_for(caller).post(
        f"/api/v1/users/{other.pk}/coupons/issue", {"coupon_id": coupon.pk}, format="json"
    )

    # then
    assert_error(response, 403, "permission_denied")
    assert not UserCoupon.objects.filter(coupon=coupon).exists()
    coupon.refresh_from_db()
    assert coupon.issued_count == 0


@pytest.mark.parametrize(("method", "path", "body"), [e for e in ENDPOINTS if "{user_id}" in e[1]])
def test_a_user_gets_403_not_404_for_a_user_that_does_not_exist(make_user, client_for, method, path, body):
    # given: the answer must not tell a normal user which user ids exist
    caller = make_user()
    missing_id = get_user_model().objects.order_by("-pk").first().pk + 1_000

    # when
    response = call(client_for(caller), method, path, body, user_id=missing_id)

    # then
    assert_error(response, 403, "permission_denied")


def test_staff_may_read_and_charge_anyones_balance(make_user, client_for):
    # given
    staff, other = make_user(staff=True), make_user(balance=7_000)
    client = client_for(staff)

    # when
    read = client.get(f"/api/v1/users/{other.pk}/balance")
    charged = client.post(f"/api/v1/users/{other.pk}/balance/charge", {"amount": 500}, format="json")

    # then
    assert read.status_code == 200, read.json()
    assert read.json() == {"user_id": other.pk, "amount": 7_000}
    assert charged.status_code == 200, charged.json()
    assert charged.json() == {"user_id": other.pk, "amount": 7_500}
    assert balance_of(user_id=other.pk) == 7_500
    assert balance_of(user_id=staff.pk) == 0


def test_staff_may_list_anyones_coupons_and_issue_them_one(make_user, make_coupon, give_coupon, client_for):
    # given
    staff, other = make_user(staff=True), make_user()
    held = give_coupon(other)
    coupon = make_coupon(quantity=5)
    client = client_for(staff)

    # when
    issued = client.post(f"/api/v1/users/{other.pk}/coupons/issue", {"coupon_id": coupon.pk}, format="json")
    listed = client.get(f"/api/v1/users/{other.pk}/coupons")

    # then
    assert issued.status_code == 201, issued.json()
    assert issued.json()["coupon_id"] == coupon.pk
    assert UserCoupon.objects.get(pk=issued.json()["id"]).user_id == other.pk
    assert listed.status_code == 200, listed.json()
    assert sorted(row["id"] for row in listed.json()) == sorted([held.pk, issued.json()["id"]])
    assert not UserCoupon.objects.filter(user=staff).exists()


@pytest.mark.parametrize(("method", "path", "body"), [e for e in ENDPOINTS if "{user_id}" in e[1]])
def test_staff_gets_404_for_a_user_that_does_not_exist(make_user, make_coupon, client_for, method, path, body):
    # given
    staff = make_user(staff=True)
    coupon = make_coupon(quantity=5)
    missing_id = get_user_model().objects.order_by("-pk").first().pk + 1_000
    if body is not None and "coupon_id" in body:
        body = {"coupon_id": coupon.pk}

    # when
    response = call(client_for(staff), method, path, body, user_id=missing_id)

    # then
    assert_error(response, 404, "not_found")
    coupon.refresh_from_db()
    assert coupon.issued_count == 0
    assert not UserCoupon.objects.exists()


def _order(client, product) -> int:
    response = client.post("/api/v1/orders", {"items": [{"product_id": product.pk, "quantity": 1}]}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def test_someone_elses_order_is_not_found(make_user, make_product, client_for):
    # given
    owner, stranger = make_user(balance=50_000), make_user()
    order_id = _order(client_for(owner), make_product())

    # when
    response = client_for(stranger).get(f"/api/v1/orders/{order_id}")

    # then: the same answer as for an order that does not exist at all
    assert_error(response, 404, "not_found")
    assert_error(client_for(stranger).get(f"/api/v1/orders/{order_id + 1_000}"), 404, "not_found")


def test_staff_may_read_anyones_order(make_user, make_product, client_for):
    # given
    owner, staff = make_user(balance=50_000), make_user(staff=True)
    order_id = _order(client_for(owner), make_product())

    # when
    response = client_for(staff).get(f"/api/v1/orders/{order_id}")

    # then
    assert response.status_code == 200, response.json()
    assert response.json()["id"] == order_id
    assert response.json()["user_id"] == owner.pk


def test_the_order_list_shows_only_the_callers_orders_newest_first_in_pages(make_user, make_product, client_for):
    # given
    caller, other = make_user(balance=1_000_000), make_user(balance=1_000_000)
    product = make_product(price=1_000, stock=100)
    others_order = _order(client_for(other), product)
    client = client_for(caller)
    mine = [_order(client, product) for _ in range(25)]

    # when
    first = client.get("/api/v1/orders")
    second = client.get(first.json()["next"])

    # then
    assert first.status_code == 200, first.json()
    assert set(first.json()) == {"count", "next", "previous", "results"}
    assert first.json()["count"] == 25
    assert first.json()["previous"] is None
    assert "page=2" in first.json()["next"]
    assert [order["id"] for order in first.json()["results"]] == mine[::-1][:20]
    assert second.status_code == 200, second.json()
    assert second.json()["count"] == 25
    assert second.json()["next"] is None
    assert second.json()["previous"] is not None
    assert [order["id"] for order in second.json()["results"]] == mine[::-1][20:]
    assert all(order["user_id"] == caller.pk for order in first.json()["results"] + second.json()["results"])
    assert others_order not in mine


def test_the_order_list_of_a_user_without_orders_is_empty(make_user, make_product, client_for):
    # given
    _order(client_for(make_user(balance=50_000)), make_product())
    caller = make_user()

    # when
    response = client_for(caller).get("/api/v1/orders")

    # then
    assert response.status_code == 200, response.json()
    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}


@pytest.mark.parametrize("page", ["3", "0", "abc"])
def test_a_page_beyond_the_orders_is_a_json_404(make_user, make_product, client_for, page):
    # given
    caller = make_user(balance=50_000)
    _order(client_for(caller), make_product())

    # when
    response = client_for(caller).get("/api/v1/orders", {"page": page})

    # then
    assert_error(response, 404, "not_found")
