"""200 concurrent clients against the API on gunicorn: every request answered (no reset, no 5xx, every order
created), and the server's PostgreSQL connections never above its budget of workers × threads."""

import threading
from dataclasses import dataclass, field

import pytest

from apps.accounts.services import api_key_issue
from chaos.environment import NO_RATE_LIMITS
from scripts.load_probe import REQUEST_TIMEOUT, Tally, client
from tests.server.conftest import running_gunicorn

CLIENTS = 200
LOAD_SECONDS = 8.0
SAMPLE_EVERY_SECONDS = 0.05


@dataclass
class ConnectionSamples:
    counts: list[int] = field(default_factory=list)

    @property
    def peak(self) -> int:
        return max(self.counts, default=0)


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

    with running_gunicorn(database_name=test_database_name, workers=2, threads=4, extra_env=NO_RATE_LIMITS) as server:
        # when every client lists products, orders and reads its order back, all at once, for 8 s
        start = threading.Barrier(CLIENTS + 1)
        clients = [
            threading.Thread(target=client, args=(server.url, token, product.pk, start, LOAD_SECONDS, tally))
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
