"""The load: HTTP clients on threads, closed-loop, open-loop (fixed rate) or a burst.

Every request is timed by the client (time.perf_counter around the POST). Closed-loop clients can wait
for their order to be decided before the next one, so that the saga, not the API, sets the pace: a
CompletionWatcher polls the database (one query every POLL seconds for all orders in flight) and wakes
the clients whose orders reached COMPLETED or FAILED.
"""

import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

from bench.data import Customer

REQUEST_TIMEOUT = 30
POLL = 0.02


@dataclass(frozen=True)
class Sample:
    started_at: float  # time.time() when the request left
    seconds: float  # until the answer
    status: int | str  # HTTP status, or "connection error"
    order_id: int | None = None
    code: str | None = None  # the error code of a 4xx


@dataclass
class Samples:
    """Thread-safe list of samples, with live counts for the progress lines."""

    items: list[Sample] = field(default_factory=list)
    decided: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, sample: Sample) -> None:
        with self._lock:
            self.items.append(sample)

    def count_decided(self) -> None:
        with self._lock:
            self.decided += 1


_local = threading.local()


def _session() -> requests.Session:
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def post(url: str, *, token: str, body: dict) -> Sample:
    started_at, clock = time.time(), time.perf_counter()
    try:
        answer = _session().post(url, json=body, headers={"Authorization": f"Token {token}"}, timeout=REQUEST_TIMEOUT)
    except requests.RequestException:
        return Sample(started_at, time.perf_counter() - clock, "connection error")
    seconds = time.perf_counter() - clock
    try:
        payload = answer.json()
    except ValueError:
        payload = {}
    order_id = payload.get("id") if answer.status_code == 201 and "status" in payload else None
    code = payload.get("code") if answer.status_code >= 400 else None
    return Sample(started_at, seconds, answer.status_code, order_id, code)


class CompletionWatcher:
    """Wakes whoever waits for an order when the database shows it COMPLETED or FAILED."""

    def __init__(self) -> None:
        self._waiting: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="completion-watcher", daemon=True)

    def __enter__(self) -> "CompletionWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def wait(self, order_id: int, timeout: float) -> bool:
        event = threading.Event()
        with self._lock:
            self._waiting[order_id] = event
        decided = event.wait(timeout)
        with self._lock:
            self._waiting.pop(order_id, None)
        return decided

    def _run(self) -> None:
        from django.db import connection

        from apps.orders.models import Order, OrderStatus

        try:
            while not self._stop.wait(POLL):
                with self._lock:
                    ids = list(self._waiting)
                if not ids:
                    continue
                decided = Order.objects.filter(
                    pk__in=ids, status__in=(OrderStatus.COMPLETED, OrderStatus.FAILED)
                ).values_list("pk", flat=True)
                with self._lock:
                    for order_id in decided:
                        if order_id in self._waiting:
                            self._waiting[order_id].set()
        finally:
            connection.close()


def closed_loop(
    *,
    url: str,
    customers: list[Customer],
    order_body: Callable[[random.Random], dict],
    clients: int,
    seconds: float,
    watcher: CompletionWatcher | None = None,
    decision_timeout: float = 120,
    samples: Samples | None = None,
) -> Samples:
    """`clients` threads, each placing orders back-to-back for `seconds` (with a watcher: each waits for
    its order to be decided before the next). Customer i belongs to client i % clients."""
    samples = samples if samples is not None else Samples()
    stop_at = time.monotonic() + seconds

    def client(number: int) -> None:
        rng = random.Random(number)
        mine = customers[number::clients]
        turn = 0
        while time.monotonic() < stop_at:
            customer = mine[turn % len(mine)]
            turn += 1
            sample = post(url, token=customer.token, body=order_body(rng))
            samples.add(sample)
            if watcher is not None and sample.order_id is not None:
                if watcher.wait(sample.order_id, decision_timeout):
                    samples.count_decided()
            elif sample.status != 201:
                time.sleep(0.05)  # do not spin on a refusing server

    with ThreadPoolExecutor(max_workers=clients, thread_name_prefix="client") as pool:
        list(pool.map(client, range(clients)))
    return samples


def open_loop(
    *,
    url: str,
    customers: list[Customer],
    order_body: Callable[[random.Random], dict],
    rate: float,
    seconds: float,
    threads: int = 16,
    samples: Samples | None = None,
) -> Samples:
    """Orders at a fixed rate whatever the answers' pace: the n-th leaves n / rate seconds after the start."""
    samples = samples if samples is not None else Samples()
    count = max(1, int(rate * seconds))
    start = time.monotonic()

    def place(number: int) -> None:
        time.sleep(max(0.0, start + number / rate - time.monotonic()))
        customer = customers[number % len(customers)]
        samples.add(post(url, token=customer.token, body=order_body(random.Random(number))))

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="paced") as pool:
        list(pool.map(place, range(count)))
    return samples


def burst(
    requests_to_send: Iterable[tuple[str, str, dict]], *, threads: int, samples: Samples | None = None
) -> Samples:
    """Send (url, token, body) requests from `threads` threads at once, as fast as they are answered."""
    samples = samples if samples is not None else Samples()

    def send(request: tuple[str, str, dict]) -> None:
        url, token, body = request
        samples.add(post(url, token=token, body=body))

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="burst") as pool:
        list(pool.map(send, requests_to_send))
    return samples
