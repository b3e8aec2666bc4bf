"""POST /api/v1/orders/{order_id}/cancel (docs/api.md, "Cancelling"): who may cancel, and what the answer says.
The saga that follows is tested with a real worker in tests/saga/test_cancel.py and raced in
tests/concurrency/test_cancel_race.py."""

import pytest

from apps.orders.models import Order
from tests.api import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def order_of(make_user, make_product, place_order):
    def make(user=None) -> tuple:
        user = user or make_user(balance=50_000)
        return user, place_order(user, [(make_product(price=10_000).pk, 1)])

    return make


def test_the_owner_cancels_an_undecided_order_and_gets_it_back_failed(order_of, client_for):
    user, order_id = order_of()

    response = client_for(user).post(f"/api/v1/orders/{order_id}/cancel")

    assert response.status_code == 202
    body = response.json()
    assert (body["id"], body["status"], body["failure_reason"]) == (order_id, "FAILED", "canceled by the customer")
    assert Order.objects.get(pk=order_id).status == "FAILED"


def test_someone_elses_order_is_not_found_and_stays_as_it_was(order_of, make_user, client_for):
    _, order_id = order_of()

    response = client_for(make_user()).post(f"/api/v1/orders/{order_id}/cancel")

    assert_error(response, 404, "not_found")
    assert Order.objects.get(pk=order_id).status == "CREATED"


def test_staff_may_cancel_anyones_order_and_the_reason_names_them(order_of, make_user, client_for):
    _, order_id = order_of()
    staff = make_user(staff=True, username="ops-kim")

    response = client_for(staff).post(f"/api/v1/orders/{order_id}/cancel")

    assert response.status_code == 202
    assert response.json()["failure_reason"] == "canceled by operator ops-kim"


def test_an_unknown_order_is_not_found(make_user, client_for):
    assert_error(client_for(make_user()).post("/api/v1/orders/987654/cancel"), 404, "not_found")


def test_a_failed_order_is_not_cancelable(order_of, client_for):
    user, order_id = order_of()
    client = client_for(user)
    client.post(f"/api/v1/orders/{order_id}/cancel")

    response = client.post(f"/api/v1/orders/{order_id}/cancel")

    body = assert_error(response, 409, "order_not_cancelable")
    assert body["details"] == {"status": "FAILED"}


def test_a_cancel_repeated_with_its_idempotency_key_gets_the_first_answer(order_of, client_for):
    user, order_id = order_of()
    client = client_for(user)

    first = client.post(f"/api/v1/orders/{order_id}/cancel", HTTP_IDEMPOTENCY_KEY="cancel-1")
    again = client.post(f"/api/v1/orders/{order_id}/cancel", HTTP_IDEMPOTENCY_KEY="cancel-1")

    assert (first.status_code, again.status_code) == (202, 202)
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()


def test_get_is_not_a_cancel(order_of, client_for):
    user, order_id = order_of()

    assert_error(client_for(user).get(f"/api/v1/orders/{order_id}/cancel"), 405)
    assert Order.objects.get(pk=order_id).status == "CREATED"
