import json
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from apps.balance.selectors import balance_of
from apps.coupons.models import Coupon
from apps.orders.management.commands import seed_demo
from apps.products.models import Product, Stock
from common.app_hooks import app_modules
from config.settings import base as base_settings

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


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("--users=-1", "--users must be at least 0, not -1."),
        ("--products=-1", "--products must be at least 0, not -1."),
        ("--stock=-1", "--stock must be at least 0, not -1."),
        ("--price=0", "--price must be at least 1, not 0."),
        ("--balance=-1", "--balance must be at least 0, not -1."),
        ("--balance=10000001", "--balance must be at most 10,000,000, not 10,000,001."),
        ("--coupon-rate=1.01", "--coupon-rate must be between 0 and 1, not 1.01."),
        ("--coupon-rate=nan", "--coupon-rate must be between 0 and 1, not nan."),
        ("--coupon-rate=abc", "--coupon-rate must be a number, not 'abc'."),
        ("--coupon-rate=0.12345", "--coupon-rate may have at most 4 decimal places, not 0.12345."),
        ("--coupon-quantity=-1", "--coupon-quantity must be at least 0, not -1."),
    ],
)
def test_a_refused_argument_says_why(argument, message):
    # when / then
    with pytest.raises(CommandError) as refused:
        call_command("seed_demo", argument, stdout=StringIO())
    assert str(refused.value) == message


def test_every_option_keeps_its_default_and_help():
    # when
    parser = seed_demo.Command().create_parser("manage.py", "seed_demo")

    # then
    defaults = {
        "users": 5,
        "products": 5,
        "stock": 100,
        "price": 10_000,
        "balance": 1_000_000,
        "coupon_rate": "0.1",
        "coupon_quantity": 100,
    }
    assert {name: parser.get_default(name) for name in defaults} == defaults
    help_text = " ".join(parser.format_help().split())
    for line in (
        "--users USERS how many users (default 5)",
        "--products PRODUCTS how many products (default 5)",
        "--stock STOCK each product's stock (default 100)",
        "--price PRICE each product's price in won (default 10000)",
        "--balance BALANCE each user's charged balance in won (default 1000000)",
        "--coupon-rate COUPON_RATE the coupon's discount rate, 0 to 1 (default 0.1)",
        "--coupon-quantity COUPON_QUANTITY coupons to issue (default 100)",
    ):
        assert line in help_text


def test_the_printed_json_has_exactly_the_documented_shape(shop_apps_only):
    # when
    demo = run_seed_demo("--users=2", "--products=2")

    # then: docs/api.md, Commands
    assert list(demo) == ["staff", "users", "products", "coupons"]
    assert set(demo["staff"]) == {"id", "username", "token", "password"}
    assert all(set(user) == {"id", "username", "token"} for user in demo["users"])
    assert all(set(product) == {"id", "name", "price", "stock"} for product in demo["products"])
    assert all(set(coupon) == {"id", "discount_rate", "quantity"} for coupon in demo["coupons"])
    people = [demo["staff"], *demo["users"]]
    assert all(type(p["id"]) is int and type(p["username"]) is str and type(p["token"]) is str for p in people)
    assert all(type(product[key]) is int for product in demo["products"] for key in ("id", "price", "stock"))
    assert all(type(product["name"]) is str for product in demo["products"])
    [coupon] = demo["coupons"]
    assert (type(coupon["id"]), type(coupon["discount_rate"]), type(coupon["quantity"])) == (int, float, int)


def test_every_apps_demo_hook_adds_its_keys_in_installed_apps_order(monkeypatch):
    # given: each installed hook, recording what it was given and what it returned
    calls = []
    for config, module in app_modules("demo"):

        def recording_seed(*, _seed=module.seed, _label=config.label, **arguments):
            part = _seed(**arguments)
            calls.append((_label, arguments["users"], part))
            return part

        monkeypatch.setattr(module, "seed", recording_seed)

    # when
    demo = run_seed_demo("--users=2")

    # then
    assert [label for label, _, _ in calls] == [config.label for config, _ in app_modules("demo")]
    assert {"balance", "products", "coupons"} <= {label for label, _, _ in calls}
    assert list(demo) == ["staff", "users", *(key for _, _, part in calls for key in part)]
    for _, users, part in calls:
        assert [(user.id, user.username) for user in users] == [(u["id"], u["username"]) for u in demo["users"]]
        assert all(demo[key] == value for key, value in part.items())


def installed_apps(names: list[str]) -> Iterator[None]:
    """INSTALLED_APPS replaced for one test (the apps' hooks are looked up afresh, common.app_hooks)."""
    with override_settings(INSTALLED_APPS=names):
        yield


@pytest.fixture
def shop_apps_only():
    """The apps the shop ships with (config/settings/base.py), without any the test settings add."""
    yield from installed_apps(base_settings.INSTALLED_APPS)


@pytest.fixture
def points_app_installed(settings):
    """An app with a demo hook and an option of its own (tests/orders/points_demo_app), installed last."""
    yield from installed_apps([*settings.INSTALLED_APPS, "tests.orders.points_demo_app"])


def test_a_new_apps_demo_hook_and_option_are_picked_up_without_changing_the_command(points_app_installed):
    # when
    demo = run_seed_demo("--users=2", "--points=70")

    # then
    assert list(demo)[:4] == ["staff", "users", "products", "coupons"] and list(demo)[-1] == "points"
    tag = demo["points"][0]["tag"]
    assert demo["points"] == [{"user_id": user["id"], "points": 70, "tag": tag} for user in demo["users"]]
    assert all(tag in user["username"] for user in demo["users"])


def test_a_new_apps_refused_option_leaves_nothing_behind(points_app_installed):
    # given
    before = counts()

    # when / then: the users and the other apps' data were created before the refusal, and are rolled back
    with pytest.raises(CommandError, match="--points must be at least 0"):
        call_command("seed_demo", "--users=2", "--points=-1", stdout=StringIO())
    assert counts() == before


def test_a_hook_that_prints_a_key_already_printed_is_refused_and_nothing_is_created(monkeypatch):
    # given: the coupons' hook printing the products' key
    [coupons_hook] = [module for config, module in app_modules("demo") if config.label == "coupons"]
    monkeypatch.setattr(coupons_hook, "seed", lambda **arguments: {"products": []})
    before = counts()

    # when / then
    with pytest.raises(ImproperlyConfigured, match="products"):
        call_command("seed_demo", "--users=1", stdout=StringIO())
    assert counts() == before
