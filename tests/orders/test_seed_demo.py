import json
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from apps.balance.selectors import balance_of
from apps.coupons.models import Coupon
from apps.orders.management.commands import seed_demo
from apps.products.models import Product, Stock

pytestmark = pytest.mark.django_db


def run_seed_demo(*args: str) -> dict:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return json.loads(out.getvalue())  # the whole of stdout is one JSON object


def client_with(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def counts() -> tuple[int, int, int]:
    return get_user_model().objects.count(), Product.objects.count(), Coupon.objects.count()


def test_seed_demo_creates_the_data_set_it_prints():
    # when
    demo = run_seed_demo(
        "--users=3",
        "--products=2",
        "--stock=7",
        "--price=1234",
        "--balance=50000",
        "--coupon-rate=0.25",
        "--coupon-quantity=9",
    )

    # then
    assert len(demo["users"]) == 3 and len(demo["products"]) == 2 and len(demo["coupons"]) == 1
    for user in demo["users"]:
        response = client_with(user["token"]).get(f"/api/v1/users/{user['id']}/balance")
        assert response.status_code == 200, response.json()
        assert response.json() == {"user_id": user["id"], "amount": 50_000}
        assert get_user_model().objects.get(pk=user["id"]).username == user["username"]
    for product in demo["products"]:
        assert product["price"] == 1234 and product["stock"] == 7
        assert Product.objects.get(pk=product["id"]).name == product["name"]
        assert Stock.objects.get(product_id=product["id"]).quantity == 7
    [coupon] = demo["coupons"]
    assert coupon["discount_rate"] == 0.25 and coupon["quantity"] == 9
    stored = Coupon.objects.get(pk=coupon["id"])
    assert stored.quantity == 9 and stored.issued_count == 0
    assert timezone.now() + timedelta(days=1) < stored.expires_at


def test_the_demo_products_are_on_sale_through_the_api():
    # given
    demo = run_seed_demo("--users=1", "--products=3", "--stock=11", "--price=5000")

    # when
    response = client_with(demo["users"][0]["token"]).get("/api/v1/products")

    # then
    assert response.status_code == 200
    listed = {product["id"]: product for product in response.json()}
    for product in demo["products"]:
        assert listed[product["id"]] == {**product, "status": "SELLING"}


def test_the_staff_token_acts_on_any_users_account():
    # given
    demo = run_seed_demo("--users=1", "--balance=70000")
    user = demo["users"][0]

    # when
    response = client_with(demo["staff"]["token"]).get(f"/api/v1/users/{user['id']}/balance")

    # then
    assert response.status_code == 200
    assert response.json()["amount"] == 70_000
    staff = get_user_model().objects.get(pk=demo["staff"]["id"])
    assert staff.is_staff and staff.username == demo["staff"]["username"]
    assert staff.check_password(demo["staff"]["password"])


def test_a_demo_user_may_not_act_on_another_demo_users_account():
    # given
    demo = run_seed_demo("--users=2")
    first, second = demo["users"]

    # when
    response = client_with(first["token"]).get(f"/api/v1/users/{second['id']}/balance")

    # then
    assert response.status_code == 403


def test_the_defaults_give_a_usable_data_set():
    # when
    demo = run_seed_demo()

    # then
    assert len(demo["users"]) == 5 and len(demo["products"]) == 5
    assert all(balance_of(user_id=user["id"]) == 1_000_000 for user in demo["users"])
    assert all(product["stock"] == 100 and product["price"] == 10_000 for product in demo["products"])
    assert demo["coupons"] == [{"id": demo["coupons"][0]["id"], "discount_rate": 0.1, "quantity": 100}]


def test_a_zero_balance_charges_nothing():
    # when
    demo = run_seed_demo("--users=1", "--balance=0")

    # then
    assert balance_of(user_id=demo["users"][0]["id"]) == 0


def test_a_balance_at_the_limit_is_accepted():
    # when
    demo = run_seed_demo("--users=1", "--balance=10000000")

    # then
    assert balance_of(user_id=demo["users"][0]["id"]) == 10_000_000


def test_every_run_creates_new_objects():
    # given
    first = run_seed_demo("--users=2", "--products=2")

    # when
    second = run_seed_demo("--users=2", "--products=2")

    # then
    for kind in ("users", "products", "coupons"):
        assert {item["id"] for item in first[kind]}.isdisjoint(item["id"] for item in second[kind])
    assert first["staff"]["id"] != second["staff"]["id"]
    first_names = {user["username"] for user in first["users"]} | {first["staff"]["username"]}
    second_names = {user["username"] for user in second["users"]} | {second["staff"]["username"]}
    assert first_names.isdisjoint(second_names)
    assert {p["name"] for p in first["products"]}.isdisjoint(p["name"] for p in second["products"])
    assert get_user_model().objects.count() == 2 * (2 + 1)
    assert Product.objects.count() == 4 and Coupon.objects.count() == 2


@pytest.mark.parametrize(
    "argument",
    [
        "--users=-1",
        "--products=-1",
        "--stock=-1",
        "--price=0",
        "--balance=-1",
        "--balance=10000001",
        "--coupon-rate=-0.1",
        "--coupon-rate=1.01",
        "--coupon-rate=nan",
        "--coupon-rate=abc",
        "--coupon-rate=0.12345",
        "--coupon-quantity=-1",
        "--users=many",
    ],
)
def test_an_invalid_argument_is_refused_and_nothing_is_created(argument):
    # given
    before = counts()

    # when / then
    with pytest.raises(CommandError):
        call_command("seed_demo", argument, stdout=StringIO())
    assert counts() == before


def test_a_refusal_midway_leaves_nothing_behind(monkeypatch):
    # given: the product names this run will choose are taken already
    monkeypatch.setattr(seed_demo, "new_run_tag", lambda: "taken")
    Product.objects.create(name="Demo taken product 2", price=1)
    before = counts()

    # when / then: users and the first product were created before the clash, and are rolled back
    with pytest.raises(CommandError, match="already exists"):
        call_command("seed_demo", "--users=2", "--products=2", stdout=StringIO())
    assert counts() == before
