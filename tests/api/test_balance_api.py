"""GET /api/v1/users/{user_id}/balance and POST /api/v1/users/{user_id}/balance/charge."""

import pytest
from django.conf import settings

from apps.balance.models import BalanceTransaction
from apps.balance.selectors import balance_of
from tests.api import assert_error

pytestmark = pytest.mark.django_db

LIMIT = 10_000_000


def test_the_limit_is_the_one_of_the_shop():
    assert settings.BALANCE_LIMIT == LIMIT


def test_a_user_who_never_charged_has_a_balance_of_0(make_user, client_for):
    # given
    user = make_user()

    # when
    response = client_for(user).get(f"/api/v1/users/{user.pk}/balance")

    # then
    assert response.status_code == 200, response.json()
    assert response.json() == {"user_id": user.pk, "amount": 0}


def test_the_balance_shows_what_was_charged(make_user, client_for):
    # given
    user = make_user(balance=12_345)

    # when
    response = client_for(user).get(f"/api/v1/users/{user.pk}/balance")

    # then
    assert response.status_code == 200, response.json()
    assert response.json() == {"user_id": user.pk, "amount": 12_345}


def test_a_charge_answers_the_new_balance(make_user, client_for):
    # given
    user = make_user(balance=1_000)
    client = client_for(user)

    # when
    first = client.post(f"/api/v1/users/{user.pk}/balance/charge", {"amount": 2_500}, format="json")
    second = client.post(f"/api/v1/users/{user.pk}/balance/charge", {"amount": 500}, format="json")

    # then
    assert first.status_code == 200, first.json()
    assert first.json() == {"user_id": user.pk, "amount": 3_500}
    assert second.status_code == 200, second.json()
    assert second.json() == {"user_id": user.pk, "amount": 4_000}
    assert client.get(f"/api/v1/users/{user.pk}/balance").json() == {"user_id": user.pk, "amount": 4_000}
    assert list(BalanceTransaction.objects.filter(user=user).order_by("id").values_list("kind", "amount")) == [
        ("CHARGE", 1_000),
        ("CHARGE", 2_500),
        ("CHARGE", 500),
    ]


def test_a_first_charge_of_a_user_who_never_charged(make_user, client_for):
    # given
    user = make_user()

    # when
    response = client_for(user).post(f"/api/v1/users/{user.pk}/balance/charge", {"amount": 700}, format="json")

    # then
    assert response.status_code == 200, response.json()
    assert response.json() == {"user_id": user.pk, "amount": 700}


def test_a_charge_may_fill_the_balance_exactly_to_the_limit(make_user, client_for):
    # given
    user = make_user(balance=LIMIT - 1_000)

    # when
    response = client_for(user).post(f"/api/v1/users/{user.pk}/balance/charge", {"amount": 1_000}, format="json")

    # then
    assert response.status_code == 200, response.json()
    assert response.json() == {"user_id": user.pk, "amount": LIMIT}


@pytest.mark.parametrize(
    ("before", "amount"),
    [(0, LIMIT + 1), (LIMIT - 1, 2), (LIMIT, 1), (5_000, LIMIT), (0, LIMIT * 1_000), (0, 2**70)],
    ids=["one charge over", "just over", "already full", "sum over", "far over", "beyond any column"],
)
def test_a_charge_beyond_the_limit_is_refused_and_changes_nothing(make_user, client_for, before, amount):
    # given
    user = make_user(balance=before)
    ledger = BalanceTransaction.objects.filter(user=user).count()

    # when
    response = client_for(user).post(f"/api/v1/users/{user.pk}/balance/charge", {"amount": amount}, format="json")

    # then
    assert_error(response, 400, "balance_limit_exceeded")
    assert balance_of(user_id=user.pk) == before
    assert BalanceTransaction.objects.filter(user=user).count() == ledger


@pytest.mark.parametrize(
    "body",
    [
        {"amount": 0},
        {"amount": -1},
        {"amount": -5_000},
        {"amount": 10.5},
        {"amount": "a lot"},
        {"amount": ""},
        {"amount": None},
        {"amount": True},
        {"amount": [1_000]},
        {"amount": {"won": 1_000}},
        {},
        {"money": 1_000},
    ],
    ids=[
        "zero",
        "minus one",
        "negative",
        "float",
        "string",
        "empty string",
        "null",
        "bool",
        "list",
        "object",
        "missing",
        "misnamed",
    ],
)
def test_a_charge_with_a_bad_amount_is_a_validation_error_and_changes_nothing(make_user, client_for, body):
    # given
    user = make_user(balance=3_000)

    # when
    response = client_for(user).post(f"/api/v1/users/{user.pk}/balance/charge", body, format="json")

    # then
    error = assert_error(response, 400, "validation_error")
    assert "amount" in error["details"]["fields"], error
    assert balance_of(user_id=user.pk) == 3_000
    assert BalanceTransaction.objects.filter(user=user).count() == 1


@pytest.mark.parametrize("body", ['{"amount": ', "amount=1000", "[1000]", '"1000"', "null"])
def test_a_charge_whose_body_is_not_a_json_object_is_refused(make_user, client_for, body):
    # given
    user = make_user(balance=3_000)

    # when
    response = client_for(user).post(f"/api/v1/users/{user.pk}/balance/charge", body, content_type="application/json")

    # then
    assert assert_error(response, 400)["code"] in {"validation_error", "parse_error"}
    assert balance_of(user_id=user.pk) == 3_000
