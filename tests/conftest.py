import itertools
import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.services import api_key_issue
from apps.balance.services import balance_charge
from apps.coupons.services import coupon_create, coupon_issue
from apps.products.services import product_create
from common.broker_options import is_amqp
from common.redis import redis_client
from eventbus.bus import domain_event
from tests.broker.rabbitmq import ensure_vhost
from tests.saga_worker import purge_queues, running_worker

_names = itertools.count(1)


@pytest.fixture(scope="session", autouse=True)
def rabbitmq_vhost():
    """On RabbitMQ (TEST_BROKER_KIND=amqp), the run's own virtual host, created if missing."""
    if is_amqp(settings.CELERY_BROKER_URL):
        ensure_vhost(settings.CELERY_BROKER_URL)


@pytest.fixture(autouse=True)
def clean_redis():
    """Every test starts with the test Redis database empty (never the development one), and on RabbitMQ
    with the run's queues empty."""
    assert settings.REDIS_URL != "redis://127.0.0.1:6379/0", "tests must not touch the development Redis"
    redis_client().flushdb()
    if is_amqp(settings.CELERY_BROKER_URL):
        purge_queues()
    yield


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}-{threading.get_ident() % 10_000}"


@pytest.fixture
def make_user(db):
    def make(*, balance: int = 0, staff: bool = False, username: str | None = None):
        user = get_user_model().objects.create_user(username=username or unique("user"), is_staff=staff)
        if balance:
            balance_charge(user_id=user.pk, amount=balance)
        return user

    return make


@pytest.fixture
def make_product(db):
    def make(*, price: int = 10_000, stock: int = 10, status: str = "SELLING", name: str | None = None):
        return product_create(name=name or unique("product"), price=price, stock=stock, status=status)

    return make


@pytest.fixture
def make_coupon(db):
    def make(
        *, rate: str = "0.1", quantity: int = 10, expires_in: timedelta = timedelta(days=1), name: str | None = None
    ):
        return coupon_create(
            name=name or unique("coupon"), discount_rate=rate, quantity=quantity, expires_at=timezone.now() + expires_in
        )

    return make


@pytest.fixture
def give_coupon(make_coupon):
    """A user coupon held by `user`, issued through the first-come service."""

    def give(user, **coupon_kwargs):
        return coupon_issue(coupon_id=make_coupon(**coupon_kwargs).pk, user_id=user.pk)

    return give


@pytest.fixture
def client_for(db):
    def make(user) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {api_key_issue(user=user)}")
        return client

    return make


def _recording(dispatch_uid: str, keep):
    """Record something of every domain event published, from any thread (the worker's included)."""
    recorded = []
    lock = threading.Lock()

    def record(sender, event, envelope, **kwargs):
        with lock:
            recorded.append(keep(event, envelope))

    domain_event.connect(record, weak=False, dispatch_uid=dispatch_uid)
    return recorded


@pytest.fixture
def published_events():
    """Every domain event published during the test."""
    yield _recording("tests.published_events", lambda event, envelope: event)
    domain_event.disconnect(dispatch_uid="tests.published_events")


@pytest.fixture
def published_envelopes():
    """The wire form of every event published during the test, to deliver again."""
    yield _recording("tests.published_envelopes", lambda event, envelope: envelope)
    domain_event.disconnect(dispatch_uid="tests.published_envelopes")


@pytest.fixture
def listeners_on_queues(settings):
    """Every listener goes through its queue, the inline ones too (EVENTBUS_INLINE_LISTENERS off): step
    results wait in the broker instead of being recorded by the step's own process, for tests that
    deliver them, lose them or race them themselves."""
    settings.EVENTBUS_INLINE_LISTENERS = False


@pytest.fixture
def saga_worker(transactional_db):
    """A real Celery worker (thread pool) consuming every saga queue from the real Redis broker."""
    with running_worker() as worker:
        yield worker


@pytest.fixture
def place_order(client_for):
    def place(user, items: list[tuple[int, int]], user_coupon_id: int | None = None) -> int:
        body = {"items": [{"product_id": p, "quantity": q} for p, q in items], "user_coupon_id": user_coupon_id}
        response = client_for(user).post("/api/v1/orders", body, format="json")
        assert response.status_code == 201, response.json()
        return response.json()["id"]

    return place
