"""What one client may consume (docs/api.md, Errors: 429 `throttled` with Retry-After): per user and scope,
counted atomically in Redis, so a burst of concurrent requests lets exactly the rate through."""

from collections import Counter

import pytest

from apps.orders.models import Order
from tests.api import assert_error
from tests.concurrency.conftest import post_all

ORDER = "/api/v1/orders"


@pytest.fixture
def rates(settings):
    """Set the rate of some scopes for this test (the others stay as the test settings have them)."""

    def set_rates(**scoped: str) -> None:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **scoped},
        }

    return set_rates


def order_body(product) -> dict:
    return {"items": [{"product_id": product.pk, "quantity": 1}], "user_coupon_id": None}


@pytest.mark.django_db
def test_a_client_over_its_order_rate_gets_429_with_retry_after(rates, make_user, make_product, client_for):
    # given a rate of 3 orders a minute
    rates(order_create="3/min")
    user, product = make_user(balance=100_000), make_product(price=1_000)
    client = client_for(user)

    # when the client places a fourth order within the minute
    answers = [client.post(ORDER, order_body(product), format="json") for _ in range(4)]

    # then the fourth is refused, says when to come back, and created nothing
    assert [answer.status_code for answer in answers[:3]] == [201, 201, 201]
    body = assert_error(answers[3], 429, "throttled")
    retry_after = int(answers[3]["Retry-After"])
    assert 1 <= retry_after <= 60
    assert body["message"] == f"Request was throttled. Expected available in {retry_after} seconds."
    assert Order.objects.count() == 3


@pytest.mark.django_db
def test_limits_are_per_client_and_per_scope(rates, make_user, make_product, client_for):
    # given a client at its order rate
    rates(order_create="1/min")
    first, second = make_user(balance=10_000), make_user(balance=10_000)
    product = make_product(price=1_000)
    client = client_for(first)
    assert client.post(ORDER, order_body(product), format="json").status_code == 201
    assert client.post(ORDER, order_body(product), format="json").status_code == 429

    # then another client may still order, and the first may still read its orders and charge
    assert client_for(second).post(ORDER, order_body(product), format="json").status_code == 201
    assert client.get(ORDER).status_code == 200
    assert client.post(f"/api/v1/users/{first.pk}/balance/charge", {"amount": 1}, format="json").status_code == 200


@pytest.mark.django_db
def test_an_empty_rate_turns_a_scope_off(rates, make_user, client_for):
    rates(balance_charge=None)
    user = make_user()
    client = client_for(user)

    answers = [client.post(f"/api/v1/users/{user.pk}/balance/charge", {"amount": 1}, format="json") for _ in range(5)]

    assert {answer.status_code for answer in answers} == {200}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("scope", "path", "body"),
    [
        ("coupon_issue", "/api/v1/users/{user_id}/coupons/issue", "coupon"),
        ("balance_charge", "/api/v1/users/{user_id}/balance/charge", {"amount": 100}),
    ],
    ids=["coupon rush", "charges"],
)
def test_a_burst_of_concurrent_requests_lets_exactly_the_rate_through(
    rates, scope, path, body, make_user, make_coupon, client_for
):
    # given a rate of 5 a minute, and one client firing 20 requests at the same moment
    rates(**{scope: "5/min"})
    user = make_user()
    coupons = [make_coupon(quantity=1) for _ in range(20)]
    bodies = [{"coupon_id": coupon.pk} for coupon in coupons] if body == "coupon" else [body] * 20
    clients = [client_for(user) for _ in range(20)]

    # when
    answers = post_all(clients, path.format(user_id=user.pk), bodies)

    # then exactly five went through, and every other one was told to wait
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses[429] == 15, statuses
    assert sum(count for status, count in statuses.items() if status != 429) == 5
    assert all(
        answer.json()["code"] == "throttled" and answer["Retry-After"]
        for answer in answers
        if answer.status_code == 429
    )
