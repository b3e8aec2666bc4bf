"""The data platform's circuit breaker, with a real worker: a platform that is down (answering 503, or refusing
connections) opens the breaker; while it is open the deliveries wait without spending their tries and the
platform hears nothing; once it is back every delivery is delivered, each once."""

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from apps.dataplatform.models import Delivery, DeliveryStatus
from common.circuit import CLOSED, DATA_PLATFORM, OPEN
from eventbus import publish
from tests.dataplatform.test_delivery import an_order_completed
from tests.payments.test_circuit import PartnerStandIn, assert_no_call_during_a_cool_off
from tests.saga_worker import wait_for, wait_until_idle

pytestmark = pytest.mark.django_db(transaction=True)

RESET = 1.5
ORDERS = range(101, 107)


@pytest.fixture
def platform(settings) -> Iterator[PartnerStandIn]:
    stand_in = PartnerStandIn()
    thread = threading.Thread(target=stand_in.server.serve_forever, daemon=True)
    thread.start()
    settings.DATA_PLATFORM_URL = stand_in.url
    settings.DATA_PLATFORM_BACKOFF_SECONDS = 0.01
    # Few tries: the waits, and the trials that fail while the breaker is open, are not among them.
    settings.DATA_PLATFORM_MAX_ATTEMPTS = 4
    settings.CIRCUIT_FAILURE_THRESHOLD = 3
    settings.CIRCUIT_RESET_SECONDS = RESET
    yield stand_in
    stand_in.server.shutdown()
    stand_in.server.server_close()
    thread.join(timeout=5)


def a_closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1/orders"


def opened() -> float:
    wait_for(lambda: DATA_PLATFORM.snapshot().state == OPEN, message="the breaker open")
    return DATA_PLATFORM.snapshot().opened_at.timestamp()


def all_sent() -> None:
    wait_for(
        lambda: Delivery.objects.filter(order_id__in=ORDERS, status=DeliveryStatus.SENT).count() == len(ORDERS),
        timeout=30,
        message="every delivery sent",
    )
    wait_until_idle()


def test_a_platform_that_is_down_opens_the_breaker_and_every_delivery_is_delivered_once_it_is_back(
    saga_worker, platform
):
    # given a platform that answers 503
    platform.answer(503)

    # when six orders complete
    for order_id in ORDERS:
        publish(an_order_completed(order_id))
    opened_at = opened()

    # then the deliveries wait, none given up on, and the platform hears only one trial per cool-off
    time.sleep(3.5 * RESET)
    assert_no_call_during_a_cool_off(platform, opened_at, RESET)
    assert not Delivery.objects.filter(status__in=(DeliveryStatus.DEAD, DeliveryStatus.SENT)).exists()
    waiting = Delivery.objects.filter(last_error__contains="circuit breaker of the data platform")
    assert waiting.exists()

    # when the platform is back
    back = time.time()
    platform.answer(200)

    # then a trial closes the breaker and every delivery is delivered, each once
    all_sent()
    assert DATA_PLATFORM.snapshot().state == CLOSED
    assert platform.calls(after=back) == {f"order-{order_id}": 1 for order_id in ORDERS}
    for delivery in Delivery.objects.filter(order_id__in=ORDERS):
        assert delivery.last_error == "" and delivery.delivered_at is not None
        # its tries are the calls it made: a few before the breaker opened, maybe a trial, the last one
        assert delivery.attempts == platform.calls()[f"order-{delivery.order_id}"]


def test_a_platform_that_refuses_connections_gets_every_delivery_once_it_listens_again(saga_worker, platform, settings):
    # given a platform that refuses connections
    settings.DATA_PLATFORM_URL = a_closed_port_url()

    # when six orders complete, and the outage outlasts several cool-offs
    for order_id in ORDERS:
        publish(an_order_completed(order_id))
    opened()
    time.sleep(3 * RESET)
    assert not Delivery.objects.filter(status=DeliveryStatus.DEAD).exists()
    assert "ConnectionError" in DATA_PLATFORM.snapshot().last_error

    # then once it listens again, every delivery is delivered, each once
    settings.DATA_PLATFORM_URL = platform.url
    all_sent()
    assert platform.calls() == {f"order-{order_id}": 1 for order_id in ORDERS}
    assert DATA_PLATFORM.snapshot().state == CLOSED
