"""Delivering completed orders to the external data platform: a real HTTP server on 127.0.0.1 stands for
the platform, and the retries run in a real Celery worker."""

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import transaction

from apps.dataplatform.models import Delivery, DeliveryStatus
from apps.dataplatform.services import (
    DeliveryFailed,
    delivery_attempt,
    delivery_give_up,
    delivery_record,
    delivery_resend,
    platform_payload,
)
from apps.orders.events import OrderCanceled, OrderCompleted, OrderLine
from common.errors import ApplicationError, RetryableError
from common.redis import redis_client
from eventbus import publish
from eventbus.events import envelope_of
from tests.saga_worker import wait_for, wait_until_idle


@dataclass(frozen=True)
class Received:
    path: str
    content_type: str
    idempotency_key: str
    body: dict
    event_type: str = ""


class DataPlatform:
    """A real HTTP server standing for the platform: it answers POSTs with the scripted statuses (the last
    one repeats) and keeps every request it received."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._statuses = [200]
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/orders"

    def answer(self, *statuses: int) -> None:
        with self._lock:
            self._statuses = list(statuses)

    def _next(self, request: Received) -> int:
        with self._lock:
            self.received.append(request)
            return self._statuses.pop(0) if len(self._statuses) > 1 else self._statuses[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = platform._next(
                    Received(
                        path=self.path,
                        content_type=self.headers.get("Content-Type", ""),
                        idempotency_key=self.headers.get("Idempotency-Key", ""),
                        body=json.loads(body),
                        event_type=self.headers.get("Event-Type", ""),
                    )
                )
                reply = json.dumps({"status": status}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args) -> None:
                pass

        return Handler


@pytest.fixture
def data_platform(settings) -> Iterator[DataPlatform]:
    platform = DataPlatform()
    thread = threading.Thread(target=platform.server.serve_forever, daemon=True)
    thread.start()
    settings.DATA_PLATFORM_URL = platform.url
    yield platform
    platform.server.shutdown()
    platform.server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def fast_retries(settings):
    settings.DATA_PLATFORM_BACKOFF_SECONDS = 0.01
    settings.DATA_PLATFORM_MAX_ATTEMPTS = 3


def an_order_completed(order_id: int = 42) -> OrderCompleted:
    return OrderCompleted(
        order_id=order_id,
        user_id=7,
        items=(OrderLine(product_id=3, quantity=2, unit_price=10_000),),
        gross_price=20_000,
        discount_price=2_000,
        total_price=18_000,
        user_coupon_id=5,
        created_at=datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC),
        completed_at=datetime(2026, 11, 21, 12, 0, 3, tzinfo=UTC),
    )


def a_delivery(order_id: int = 42) -> Delivery:
    return delivery_record(
        order_id=order_id, payload=platform_payload(envelope_of(an_order_completed(order_id))["data"])
    )


def delivery_of(order_id: int) -> Delivery:
    return Delivery.objects.get(order_id=order_id, event_type="OrderCompleted")


def a_cancellation(order_id: int = 42) -> Delivery:
    completed = an_order_completed(order_id)
    canceled = OrderCanceled(
        order_id=order_id,
        user_id=completed.user_id,
        user_coupon_id=completed.user_coupon_id,
        items=completed.items,
        total_price=completed.total_price,
        completed_at=completed.completed_at,
        canceled_at=datetime(2026, 11, 21, 13, 0, 0, tzinfo=UTC),
        reason="canceled by the customer",
    )
    return delivery_record(
        order_id=order_id, event_type="OrderCanceled", payload=platform_payload(envelope_of(canceled)["data"])
    )


# --- one attempt -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_without_a_platform_url_the_delivery_is_only_recorded(settings):
    # given
    settings.DATA_PLATFORM_URL = None
    delivery = a_delivery()

    # when
    status = delivery_attempt(delivery_id=delivery.pk)

    # then
    assert status == DeliveryStatus.RECORDED
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.RECORDED
    assert delivery.attempts == 0 and delivery.delivered_at is not None


@pytest.mark.django_db
def test_a_delivery_is_recorded_once_per_order():
    first = a_delivery(order_id=42)
    again = delivery_record(order_id=42, payload={"something": "else"})
    assert again.pk == first.pk and again.payload == first.payload
    assert Delivery.objects.count() == 1


@pytest.mark.django_db
def test_an_accepted_delivery_is_sent_as_json_with_an_idempotency_key(data_platform):
    # given
    delivery = a_delivery(order_id=42)

    # when
    status = delivery_attempt(delivery_id=delivery.pk)

    # then
    assert status == DeliveryStatus.SENT
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT
    assert delivery.attempts == 1 and delivery.delivered_at is not None and delivery.last_error == ""
    assert data_platform.received == [
        Received(
            path="/v1/orders",
            content_type="application/json",
            idempotency_key="order-42",
            body={
                "order_id": 42,
                "user_id": 7,
                "items": [{"product_id": 3, "quantity": 2, "unit_price": 10_000}],
                "gross_price": 20_000,
                "discount_price": 2_000,
                "total_price": 18_000,
                "user_coupon_id": 5,
                "created_at": "2026-11-21T12:00:00Z",
                "completed_at": "2026-11-21T12:00:03Z",
            },
            event_type="OrderCompleted",
        )
    ]


@pytest.mark.django_db
def test_a_sent_delivery_is_not_sent_again(data_platform):
    # given
    delivery = a_delivery()
    delivery_attempt(delivery_id=delivery.pk)

    # when
    status = delivery_attempt(delivery_id=delivery.pk)

    # then
    assert status == DeliveryStatus.SENT
    assert len(data_platform.received) == 1
    assert delivery_of(42).attempts == 1


@pytest.mark.django_db
@pytest.mark.parametrize("answer", [500, 503, 408, 429])
def test_a_server_error_is_a_retryable_failure(data_platform, answer):
    # given
    data_platform.answer(answer)
    delivery = a_delivery()

    # when
    with pytest.raises(DeliveryFailed) as failure:
        delivery_attempt(delivery_id=delivery.pk)

    # then
    assert isinstance(failure.value, RetryableError)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.RETRYING
    assert delivery.attempts == 1 and delivery.delivered_at is None
    assert delivery.last_error.startswith(f"HTTP {answer}")


@pytest.mark.django_db
def test_an_unreachable_platform_is_a_retryable_failure(settings):
    # given a port nobody listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.DATA_PLATFORM_URL = f"http://127.0.0.1:{port}/v1/orders"
    delivery = a_delivery()

    # when
    with pytest.raises(DeliveryFailed):
        delivery_attempt(delivery_id=delivery.pk)

    # then
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.RETRYING and "ConnectionError" in delivery.last_error


@pytest.mark.django_db
def test_a_client_error_makes_the_delivery_dead_at_once(data_platform):
    # given
    data_platform.answer(400)
    delivery = a_delivery()

    # when
    status = delivery_attempt(delivery_id=delivery.pk)

    # then
    assert status == DeliveryStatus.DEAD
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DEAD and delivery.attempts == 1
    assert delivery.last_error.startswith("HTTP 400")


# --- through a real worker --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_order_completed_is_delivered_after_two_server_errors(saga_worker, data_platform, fast_retries):
    # given
    data_platform.answer(500, 500, 200)

    # when the order completes
    publish(an_order_completed(order_id=42))

    # then
    wait_for(lambda: Delivery.objects.filter(order_id=42, status=DeliveryStatus.SENT).exists(), message="sent")
    wait_until_idle()
    delivery = delivery_of(42)
    assert delivery.attempts == 3 and delivery.last_error == "" and delivery.delivered_at is not None
    assert len(data_platform.received) == 3
    assert {request.idempotency_key for request in data_platform.received} == {"order-42"}
    assert all(request.body == delivery.payload for request in data_platform.received)


@pytest.mark.django_db(transaction=True)
def test_a_delivery_failing_every_attempt_ends_dead(saga_worker, data_platform, fast_retries):
    # given
    data_platform.answer(500)

    # when
    publish(an_order_completed(order_id=42))

    # then
    wait_for(lambda: Delivery.objects.filter(order_id=42, status=DeliveryStatus.DEAD).exists(), message="dead")
    wait_until_idle()
    delivery = delivery_of(42)
    assert delivery.attempts == 3
    assert delivery.last_error.startswith("HTTP 500") and delivery.delivered_at is None
    assert len(data_platform.received) == 3


@pytest.mark.django_db(transaction=True)
def test_a_refused_delivery_is_not_retried(saga_worker, data_platform, fast_retries):
    # given
    data_platform.answer(400)

    # when
    publish(an_order_completed(order_id=42))

    # then
    wait_for(lambda: Delivery.objects.filter(order_id=42, status=DeliveryStatus.DEAD).exists(), message="dead")
    wait_until_idle()
    delivery = delivery_of(42)
    assert delivery.attempts == 1 and delivery.last_error.startswith("HTTP 400")
    assert len(data_platform.received) == 1


@pytest.mark.django_db(transaction=True)
def test_a_dead_delivery_sent_again_goes_pending_and_is_then_delivered(saga_worker, data_platform, fast_retries):
    # given a dead delivery, and a platform that accepts it now
    delivery = a_delivery(order_id=42)
    delivery_give_up(delivery_id=delivery.pk, error="HTTP 500: down for maintenance")
    assert delivery_of(42).status == DeliveryStatus.DEAD
    data_platform.answer(200)

    # when an operator sends it again
    with transaction.atomic():
        delivery_resend(delivery_id=delivery.pk)

        # then, before commit, it is pending afresh
        pending = delivery_of(42)
        assert (pending.status, pending.attempts, pending.last_error) == (DeliveryStatus.PENDING, 0, "")

    # then, after commit, the worker delivers it
    wait_for(lambda: delivery_of(42).status == DeliveryStatus.SENT, message="sent")
    wait_until_idle()
    assert delivery_of(42).attempts == 1
    assert [request.idempotency_key for request in data_platform.received] == ["order-42"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("status", [DeliveryStatus.PENDING, DeliveryStatus.RETRYING, DeliveryStatus.SENT])
def test_only_a_dead_delivery_can_be_sent_again(status):
    # given
    delivery = a_delivery(order_id=42)
    Delivery.objects.filter(pk=delivery.pk).update(status=status, attempts=2)

    # when
    with pytest.raises(ApplicationError) as refusal:
        delivery_resend(delivery_id=delivery.pk)

    # then
    assert refusal.value.code == "delivery_not_dead"
    assert (delivery_of(42).status, delivery_of(42).attempts) == (status, 2)
    assert redis_client().llen("dataplatform") == 0


# --- a cancelled order ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_cancellation_waits_until_the_completion_was_delivered(data_platform):
    # given: the order's cancellation, and its completion not delivered yet
    cancellation = a_cancellation(order_id=42)

    # when / then: the cancellation is not sent before the completion
    with pytest.raises(DeliveryFailed, match="completion"):
        delivery_attempt(delivery_id=cancellation.pk)
    cancellation.refresh_from_db()
    assert cancellation.status == DeliveryStatus.RETRYING
    assert data_platform.received == []

    # when the completion is delivered, the cancellation goes next, with its own type and key
    delivery_attempt(delivery_id=a_delivery(order_id=42).pk)
    assert delivery_attempt(delivery_id=cancellation.pk) == DeliveryStatus.SENT
    assert [(r.event_type, r.idempotency_key) for r in data_platform.received] == [
        ("OrderCompleted", "order-42"),
        ("OrderCanceled", "order-42-canceled"),
    ]
    assert data_platform.received[1].body["canceled_at"] == "2026-11-21T13:00:00Z"
    assert Delivery.objects.filter(order_id=42).count() == 2


@pytest.mark.django_db
def test_a_cancellation_follows_a_completion_given_up_on(data_platform):
    # given: a completion the platform refused for good (dead), and the order's cancellation
    data_platform.answer(400)
    delivery_attempt(delivery_id=a_delivery(order_id=42).pk)
    assert delivery_of(42).status == DeliveryStatus.DEAD
    data_platform.answer(200)

    # when / then: the cancellation does not wait for an operator
    assert delivery_attempt(delivery_id=a_cancellation(order_id=42).pk) == DeliveryStatus.SENT
