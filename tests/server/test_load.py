"""200 concurrent clients against the API on gunicorn: every request answered (no reset, no 5xx, every order
created), and the server's PostgreSQL connections never above its budget of workers × threads."""

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import requests

from apps.accounts.services import api_key_issue
from tests.server.conftest import running_gunicorn

CLIENTS = 200
LOAD_SECONDS = 8.0
SAMPLE_EVERY_SECONDS = 0.05
REQUEST_TIMEOUT = 30.0
# Per-user rate limits off: each client orders as fast as it is answered.
NO_THROTTLES = {
    "THROTTLE_RATE_ORDER_CREATE": "",
    "THROTTLE_RATE_ORDER_CANCEL": "",
    "THROTTLE_RATE_BALANCE_CHARGE": "",
    "THROTTLE_RATE_COUPON_ISSUE": "",
}


@dataclass
class Tally:
    statuses: Counter = field(default_factory=Counter)  # (kind, status) -> count
    errors: Counter = field(default_factory=Counter)  # (kind, error) -> count
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answered(self, kind: str, status: int) -> None:
        with self.lock:
            self.statuses[kind, status] += 1

    def failed(self, kind: str, error: Exception) -> None:
        with self.lock:
            self.errors[kind, f"{type(error).__name__}: {str(error)[:120]}"] += 1

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())

    def of_kind(self, kind: str) -> Counter:
        return Counter({status: count for (each, status), count in self.statuses.items() if each == kind})

    def summary(self) -> str:
        by_kind = {kind: dict(self.of_kind(kind)) for kind in ("list", "create", "read")}
        return f"{self.requests} requests; statuses {by_kind}; transport errors {dict(self.errors)}"


@dataclass
class ConnectionSamples:
    counts: list[int] = field(default_factory=list)

    @property
    def peak(self) -> int:
        return max(self.counts, default=0)


def client_loop(url: str, token: str, product_id: int, start: threading.Barrier, stop_at: float, tally: Tally):
    """List products, place an order, read it back; again until the time is up."""
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    order = {"items": [{"product_id": product_id, "quantity": 1}], "user_coupon_id": None}
    order_id = None
    start.wait()
    while time.monotonic() < stop_at:
        for kind in ("list", "create", "read"):
            try:
                if kind == "list":
                    response = session.get(f"{url}/api/v1/products", timeout=REQUEST_TIMEOUT)
                elif kind == "create":
                    response = session.post(f"{url}/api/v1/orders", json=order, timeout=REQUEST_TIMEOUT)
                    if response.status_code == 201:
                        order_id = response.json()["id"]
                elif order_id is not None:
                    response = session.get(f"{url}/api/v1/orders/{order_id}", timeout=REQUEST_TIMEOUT)
                else:
                    continue
            except requests.RequestException as error:
                tally.failed(kind, error)
                continue
            tally.answered(kind, response.status_code)
    session.close()


def sample_connections(server, monitor, samples: ConnectionSamples, stop: threading.Event) -> None:
    while not stop.is_set():
        samples.counts.append(server.connections_now(monitor))
        stop.wait(SAMPLE_EVERY_SECONDS)


@pytest.mark.django_db(transaction=True)
def test_200_concurrent_clients_are_all_answered_within_the_connection_budget(
    test_database_name, monitor, make_user, make_product
):
    # given 200 users with their own API key and balance, a product with plenty of stock, and the API on
    # gunicorn (2 workers × 4 threads: a budget of 8 connections) without rate limits
    product = make_product(stock=1_000_000, price=1_000)
    tokens = [api_key_issue(user=make_user(balance=1_000_000)) for _ in range(CLIENTS)]
    tally, samples, sampling_done = Tally(), ConnectionSamples(), threading.Event()

    with running_gunicorn(database_name=test_database_name, workers=2, threads=4, extra_env=NO_THROTTLES) as server:
        # when every client lists products, orders and reads its order back, all at once, for 8 s
        start = threading.Barrier(CLIENTS + 1)
        stop_at = time.monotonic() + LOAD_SECONDS + 1  # the clients start at most about a second from now
        clients = [
            threading.Thread(target=client_loop, args=(server.url, token, product.pk, start, stop_at, tally))
            for token in tokens
        ]
        sampler = threading.Thread(target=sample_connections, args=(server, monitor, samples, sampling_done))
        for thread in clients:
            thread.start()
        sampler.start()
        start.wait()
        for thread in clients:
            thread.join(timeout=LOAD_SECONDS + REQUEST_TIMEOUT)
        sampling_done.set()
        sampler.join()
        log = server.log_tail()

    # then every request was answered, none with a server error, every order was created, and the server
    # never held more connections than its budget
    figures = f"{tally.summary()}; peak connections {samples.peak} of a budget of {server.connection_budget}"
    figures += f" ({len(samples.counts)} samples)"
    print(figures)  # shown with -s
    assert not any(thread.is_alive() for thread in clients), f"clients still running; {figures}"
    assert not tally.errors, f"transport errors; {figures}\n{log}"
    server_errors = {key: count for key, count in tally.statuses.items() if key[1] >= 500}
    assert not server_errors, f"server errors {server_errors}; {figures}\n{log}"
    assert set(tally.of_kind("create")) == {201}, f"an order was refused; {figures}"
    assert set(tally.of_kind("list")) == {200} and set(tally.of_kind("read")) == {200}, figures
    assert tally.requests >= CLIENTS * 3, f"fewer than three requests per client; {figures}"
    assert 0 < samples.peak <= server.connection_budget, f"connections over the budget; {figures}"
