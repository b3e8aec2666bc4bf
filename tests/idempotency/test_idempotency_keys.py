"""Idempotency-Key on the four POSTs (docs/api.md, "Idempotency keys"): a repeat changes nothing and gets the
first answer again; the key lives and dies with the request's effect, in one transaction."""

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.services import api_key_issue
from apps.balance.models import BalanceTransaction
from apps.balance.selectors import balance_of
from apps.coupons.models import UserCoupon
from apps.orders.consistency import violations
from apps.orders.models import Order
from eventbus.models import OutboxMessage
from idempotency.models import IdempotencyKey
from idempotency.services import idempotency_claim, idempotency_purge_expired
from tests.api import assert_error
from tests.concurrency.conftest import post_all
from tests.saga_worker import running_worker, wait_for

KEY = "7b9c1f0e-order-retry"


def keyed_clients(user, count: int, key: str) -> list[APIClient]:
    """`count` clients of one user (one per thread), each sending the same Idempotency-Key."""
    token = api_key_issue(user=user)
    clients = [APIClient() for _ in range(count)]
    for client in clients:
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}", HTTP_IDEMPOTENCY_KEY=key)
    return clients


def order_body(product, quantity: int = 1) -> dict:
    return {"items": [{"product_id": product.pk, "quantity": quantity}], "user_coupon_id": None}


def post(client, path: str, body: dict | None = None, key: str | None = KEY):
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return client.post(path, body or {}, format="json", **headers)


@pytest.mark.django_db
def test_a_repeated_order_gets_the_first_answer_and_creates_nothing(make_user, make_product, client_for):
    # given
    user, product = make_user(balance=50_000), make_product(price=10_000)
    client = client_for(user)
    first = post(client, "/api/v1/orders", order_body(product))

    # when the client retries with the same key and body (its keys in another order: equal as JSON)
    again = client.post(
        "/api/v1/orders",
        {"user_coupon_id": None, "items": [{"quantity": 1, "product_id": product.pk}]},
        format="json",
        HTTP_IDEMPOTENCY_KEY=KEY,
    )

    # then
    assert first.status_code == 201 and "Idempotent-Replayed" not in first
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == first.content  # byte for byte
    assert again["Content-Type"] == "application/json"
    assert Order.objects.count() == 1
    assert OutboxMessage.objects.filter(event_type="OrderCreated").values("event_id").distinct().count() == 1


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_refused_and_changes_nothing(make_user, make_product, client_for):
    user, product = make_user(balance=50_000), make_product(price=10_000)
    client = client_for(user)
    post(client, "/api/v1/orders", order_body(product, quantity=1))

    response = post(client, "/api/v1/orders", order_body(product, quantity=2))

    assert_error(response, 422, "idempotency_key_reused")
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_the_same_key_on_another_endpoint_is_another_request(make_user, make_product, client_for):
    user, product = make_user(balance=50_000), make_product(price=10_000)
    client = client_for(user)
    post(client, f"/api/v1/users/{user.pk}/balance/charge", {"amount": 1_000})

    response = post(client, "/api/v1/orders", order_body(product))

    assert_error(response, 422, "idempotency_key_reused")
    assert balance_of(user_id=user.pk) == 51_000


@pytest.mark.django_db
def test_keys_belong_to_their_caller(make_user, client_for):
    first, second = make_user(), make_user()

    answers = [
        post(client_for(user), f"/api/v1/users/{user.pk}/balance/charge", {"amount": 700}) for user in (first, second)
    ]

    assert [answer.status_code for answer in answers] == [200, 200]
    assert "Idempotent-Replayed" not in answers[1]
    assert (balance_of(user_id=first.pk), balance_of(user_id=second.pk)) == (700, 700)


@pytest.mark.django_db
def test_without_a_key_every_request_is_processed(make_user, make_product, client_for):
    user, product = make_user(balance=50_000), make_product(price=10_000)
    client = client_for(user)

    answers = [post(client, "/api/v1/orders", order_body(product), key=None) for _ in range(2)]

    assert [answer.status_code for answer in answers] == [201, 201]
    assert Order.objects.count() == 2


@pytest.mark.django_db
def test_a_refusal_is_kept_and_replayed_even_if_the_request_would_now_pass(make_user, make_product, client_for):
    # given an order refused because its product is on hold
    user, product = make_user(balance=50_000), make_product(price=10_000, status="HOLD")
    client = client_for(user)
    refused = post(client, "/api/v1/orders", order_body(product))
    assert_error(refused, 400, "product_not_orderable")

    # when the product goes on sale and the same request is sent again with its key
    product.status = "SELLING"
    product.save()
    again = post(client, "/api/v1/orders", order_body(product))

    # then it is the first answer again, and nothing was ordered
    assert again.status_code == 400 and again["Idempotent-Replayed"] == "true"
    assert again.json() == refused.json()
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_a_first_request_that_ended_in_a_5xx_is_processed_anew(make_user, make_product, client_for, monkeypatch):
    # given an order whose first try fails on our side after writing its order (a bug, say)
    user, product = make_user(balance=50_000), make_product(price=10_000)
    client = client_for(user)
    import apps.orders.apis as order_apis

    real_view = order_apis.new_order_view

    def broken_view(order):
        raise RuntimeError("the server broke after writing the order")

    monkeypatch.setattr(order_apis, "new_order_view", broken_view)
    failed = post(client, "/api/v1/orders", order_body(product))
    assert_error(failed, 500, "internal_error")
    assert Order.objects.count() == 0 and IdempotencyKey.objects.count() == 0  # nothing half-done

    # when the client retries with the same key once the server works
    monkeypatch.setattr(order_apis, "new_order_view", real_view)
    retried = post(client, "/api/v1/orders", order_body(product))

    # then it is processed as if new
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_an_expired_key_is_forgotten(make_user, client_for, settings):
    user = make_user()
    client = client_for(user)
    path = f"/api/v1/users/{user.pk}/balance/charge"
    post(client, path, {"amount": 100})
    IdempotencyKey.objects.update(
        created_at=timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS, seconds=1)
    )

    # a new request with the old key, even with another body, is processed
    response = post(client, path, {"amount": 300})

    assert response.status_code == 200 and "Idempotent-Replayed" not in response
    assert balance_of(user_id=user.pk) == 400
    # and beat's purge forgets expired keys, not the others
    IdempotencyKey.objects.create(user=user, key="old", fingerprint="f" * 64, status_code=200)
    IdempotencyKey.objects.filter(key="old").update(created_at=timezone.now() - timedelta(days=2))
    assert idempotency_purge_expired() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == [KEY]


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "k" * 256, "clé", "tab\there"], ids=["empty", "too long", "non-ascii", "control"])
def test_a_malformed_key_is_a_validation_error(make_user, client_for, key):
    user = make_user()

    response = post(client_for(user), f"/api/v1/users/{user.pk}/balance/charge", {"amount": 100}, key=key)

    assert_error(response, 400, "validation_error")
    assert balance_of(user_id=user.pk) == 0


@pytest.mark.django_db(transaction=True)
def test_a_request_whose_key_is_still_being_processed_gets_409_after_a_short_wait(make_user, client_for, settings):
    # given a first request holding the key in its open transaction
    settings.IDEMPOTENCY_WAIT_SECONDS = 0.3
    user = make_user()
    holding, release = threading.Event(), threading.Event()

    def first_request() -> None:
        try:
            with transaction.atomic():
                idempotency_claim(user_id=user.pk, key=KEY, fingerprint="the first request")
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=first_request)
    thread.start()
    assert holding.wait(10)

    # when the retry arrives meanwhile
    response = post(client_for(user), f"/api/v1/users/{user.pk}/balance/charge", {"amount": 100})
    release.set()
    thread.join(10)

    # then it is told to come back, and nothing was charged
    assert_error(response, 409, "idempotency_key_in_use")
    assert balance_of(user_id=user.pk) == 0


@pytest.mark.django_db(transaction=True)
def test_twenty_requests_with_one_key_at_once_create_one_order_and_charge_once(
    make_user, make_product, client_for, published_events
):
    # given a client that sends the same order twenty times at once, with one key
    user, product = make_user(balance=50_000), make_product(price=10_000, stock=30)
    clients = keyed_clients(user, 20, KEY)

    # when
    with running_worker():
        responses = post_all(clients, "/api/v1/orders", [order_body(product)] * 20)
        order_id = responses[0].json()["id"]
        wait_for(lambda: Order.objects.filter(pk=order_id, status="COMPLETED").exists(), message="completed")

    # then every answer is the one order, and it was charged once
    assert Counter(response.status_code for response in responses) == {201: 20}
    assert {response.json()["id"] for response in responses} == {order_id}
    assert Counter(response.get("Idempotent-Replayed") for response in responses) == {None: 1, "true": 19}
    assert Order.objects.count() == 1
    assert balance_of(user_id=user.pk) == 40_000
    assert list(BalanceTransaction.objects.filter(kind="USE").values_list("amount", flat=True)) == [10_000]
    assert violations(published_events) == []


@pytest.mark.django_db(transaction=True)
def test_twenty_charges_and_coupon_issues_with_one_key_at_once_take_effect_once(make_user, make_coupon, client_for):
    user = make_user()
    coupon = make_coupon(quantity=5)

    charges = post_all(
        keyed_clients(user, 20, KEY), f"/api/v1/users/{user.pk}/balance/charge", [{"amount": 1_000}] * 20
    )
    issues = post_all(
        keyed_clients(user, 20, "another key"),
        f"/api/v1/users/{user.pk}/coupons/issue",
        [{"coupon_id": coupon.pk}] * 20,
    )

    assert Counter(response.status_code for response in charges) == {200: 20}
    assert {response.json()["amount"] for response in charges} == {1_000}
    assert balance_of(user_id=user.pk) == 1_000
    assert Counter(response.status_code for response in issues) == {201: 20}
    assert UserCoupon.objects.filter(user=user).count() == 1
    coupon.refresh_from_db()
    assert coupon.issued_count == 1
