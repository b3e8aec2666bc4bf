"""bench.dataplatform: the remote phases' data platform, a real HTTP server that answers after its delay."""

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from apps.dataplatform.models import Delivery, DeliveryStatus
from apps.dataplatform.services import delivery_attempt
from bench.dataplatform import DataPlatformServer, running_data_platform

DELAY_S = 0.1


@pytest.fixture
def platform() -> Iterator[DataPlatformServer]:
    server = DataPlatformServer(("127.0.0.1", 0), delay_s=DELAY_S)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def send(url: str, key: str | None = "order-1", event_type: str | None = "OrderCompleted") -> requests.Response:
    headers = {name: value for name, value in (("Idempotency-Key", key), ("Event-Type", event_type)) if value}
    return requests.post(url, json={"order_id": 1}, headers=headers, timeout=5)


def test_it_answers_each_post_after_its_delay_and_counts_what_it_received(platform):
    # when an event is sent, then sent again with the same key
    started = time.perf_counter()
    first = send(platform.url)
    took = time.perf_counter() - started
    again = send(platform.url)

    # then the first is accepted after the delay, the second answered as a duplicate
    assert first.status_code == 202 and first.json() == {"accepted": True, "duplicate": False}
    assert DELAY_S <= took < DELAY_S + 0.5
    assert again.status_code == 200 and again.json()["duplicate"] is True
    # and the counts say so, over HTTP too
    received = requests.get(platform.url.removesuffix("/events") + "/received", timeout=5).json()
    assert received == platform.snapshot()
    assert received["posts"] == 2 and received["accepted"] == 1 and received["duplicates"] == 1
    assert received["by_event_type"] == {"OrderCompleted": 1} and received["refused"] == 0


def test_it_refuses_what_is_no_event(platform):
    # a POST without a key, without a type, or to another path: 4xx, which the shop takes as final
    assert send(platform.url, key=None).status_code == 400
    assert send(platform.url, event_type=None).status_code == 400
    assert send(platform.url.replace("/events", "/other")).status_code == 404
    assert platform.snapshot()["refused"] == 2 and platform.snapshot()["accepted"] == 0


def test_concurrent_requests_overlap(platform):
    # when 10 events are sent at once, each answered after 0.1 s
    started = time.perf_counter()
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda n: send(platform.url, key=f"order-{n}"), range(10)))
    took = time.perf_counter() - started

    # then they were all in flight together: far less than 10 × 0.1 s
    assert [answer.status_code for answer in answers] == [202] * 10
    assert took < 5 * DELAY_S
    assert platform.snapshot()["max_in_flight"] >= 5


@pytest.mark.django_db
def test_it_takes_what_the_shop_sends(platform, settings):
    # given a delivery of an order's completion, and the platform's URL set
    settings.DATA_PLATFORM_URL = platform.url
    delivery = Delivery.objects.create(order_id=7, event_type="OrderCompleted", payload={"order_id": 7})

    # when the shop sends it, then the platform accepts it
    assert delivery_attempt(delivery_id=delivery.pk) == DeliveryStatus.SENT
    assert platform.snapshot()["accepted"] == 1
    assert platform.snapshot()["by_event_type"] == {"OrderCompleted": 1}


def test_the_benchmark_runs_it_as_a_child_process_and_stops_it(tmp_path):
    with running_data_platform(delay_ms=10, log=tmp_path / "platform.log") as running:
        assert send(running.url).status_code == 202
        assert running.received()["accepted"] == 1
    with pytest.raises(requests.ConnectionError):
        send(running.url)
