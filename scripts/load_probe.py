"""Hit a running API (`make run`) with many concurrent clients for a while, and report what happened.

    .venv/bin/python manage.py seed_demo --users 200 > .run/demo-load.json    # one user per client
    .venv/bin/python scripts/load_probe.py --demo .run/demo-load.json --clients 200 --seconds 30

Each client (a thread with its own keep-alive connection) takes a demo user's token (round robin when
there are fewer users than clients) and lists products, places an order and reads it back, over and
over. The probe counts requests, answers by status, and transport errors (resets, refusals, timeouts),
and every 50 ms counts the PostgreSQL connections held by the processes listening on the API's port
(gunicorn's master and workers; from /proc, so Linux only) and by the whole database. It exits 1 on any
transport error, any 5xx, or API connections above the budget (WEB_CONCURRENCY × GUNICORN_THREADS).
Per-user rate limits stay as the server has them: 429s are counted, not failures.
"""

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.connection_budget import api_pool_from_environment  # noqa: E402

POSTGRES_PORT = 5432
TCP_LISTEN, TCP_ESTABLISHED = "0A", "01"
SAMPLE_EVERY_SECONDS = 0.05
REQUEST_TIMEOUT = 30.0
KINDS = ("list", "create", "read")


@dataclass
class Tally:
    statuses: Counter = field(default_factory=Counter)  # (kind, status)
    errors: Counter = field(default_factory=Counter)  # (kind, error class)
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

    @property
    def server_errors(self) -> int:
        return sum(count for (_, status), count in self.statuses.items() if status >= 500)

    def of_kind(self, kind: str) -> Counter:
        return Counter({status: count for (each, status), count in self.statuses.items() if each == kind})

    def summary(self) -> str:
        by_kind = {kind: dict(self.of_kind(kind)) for kind in KINDS}
        return f"{self.requests} requests; statuses {by_kind}; transport errors {dict(self.errors)}"


def _tcp_sockets() -> list[tuple[int, int, str, int]]:
    """(local port, remote port, state, inode) of every IPv4 and IPv6 TCP socket on the machine."""
    sockets = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            sockets.append((local_port, remote_port, fields[3], int(fields[9])))
    return sockets


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return inodes
    for descriptor in descriptors:
        try:
            target = os.readlink(descriptor)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def processes_listening_on(port: int) -> set[int]:
    """Every process holding the listening socket of `port`: gunicorn's master and its workers."""
    listening = {inode for local, _, state, inode in _tcp_sockets() if local == port and state == TCP_LISTEN}
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _socket_inodes(int(entry.name)) & listening:
            pids.add(int(entry.name))
    return pids


def postgres_connections_of(pids: set[int]) -> int:
    inodes = set().union(*(_socket_inodes(pid) for pid in pids)) if pids else set()
    return sum(
        1
        for _, remote, state, inode in _tcp_sockets()
        if remote == POSTGRES_PORT and state == TCP_ESTABLISHED and inode in inodes
    )


@dataclass
class Samples:
    api: list[int] = field(default_factory=list)
    database: list[int] = field(default_factory=list)
    api_processes: int = 0


def sample(api_port: int, database_url: str, samples: Samples, stop: threading.Event) -> None:
    with psycopg.connect(database_url, autocommit=True) as monitor:
        pids, resolved_at = set(), 0.0
        while not stop.is_set():
            if time.monotonic() - resolved_at > 1.0:  # workers may be replaced
                pids, resolved_at = processes_listening_on(api_port), time.monotonic()
                samples.api_processes = len(pids)
            samples.api.append(postgres_connections_of(pids))
            row = monitor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
            ).fetchone()
            samples.database.append(row[0])
            stop.wait(SAMPLE_EVERY_SECONDS)


def client(api: str, token: str, product_id: int, start: threading.Barrier, seconds: float, tally: Tally) -> None:
    """One client: once every client has started, list products, place an order and read it back, again
    and again for `seconds`, on one keep-alive connection."""
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    order = {"items": [{"product_id": product_id, "quantity": 1}], "user_coupon_id": None}
    order_id = None
    start.wait()
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        for kind in KINDS:
            try:
                if kind == "list":
                    response = session.get(f"{api}/api/v1/products", timeout=REQUEST_TIMEOUT)
                elif kind == "create":
                    response = session.post(f"{api}/api/v1/orders", json=order, timeout=REQUEST_TIMEOUT)
                    if response.status_code == 201:
                        order_id = response.json()["id"]
                elif order_id is not None:
                    response = session.get(f"{api}/api/v1/orders/{order_id}", timeout=REQUEST_TIMEOUT)
                else:
                    continue
            except requests.RequestException as error:
                tally.failed(kind, error)
                continue
            tally.answered(kind, response.status_code)
    session.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=ROOT / ".run" / "demo.json", help="seed_demo's JSON")
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/shop")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--budget", type=int, help="the API's connections budget (default: from the environment)")
    args = parser.parse_args()

    demo = json.loads(args.demo.read_text())
    tokens = [user["token"] for user in demo["users"]]
    product_id = demo["products"][0]["id"]
    workers, threads = api_pool_from_environment()
    budget = args.budget or workers * threads
    api_port = urlsplit(args.api).port or 80

    tally, samples, stop_sampling = Tally(), Samples(), threading.Event()
    start = threading.Barrier(args.clients + 1)
    clients = [
        threading.Thread(
            target=client, args=(args.api, tokens[number % len(tokens)], product_id, start, args.seconds, tally)
        )
        for number in range(args.clients)
    ]
    sampler = threading.Thread(target=sample, args=(api_port, args.database_url, samples, stop_sampling))
    sampler.start()
    for thread in clients:
        thread.start()
    began = time.monotonic()
    start.wait()
    for thread in clients:
        thread.join()
    elapsed = time.monotonic() - began
    stop_sampling.set()
    sampler.join()

    by_kind: dict[str, dict[int, int]] = {}
    for (kind, status), count in sorted(tally.statuses.items()):
        by_kind.setdefault(kind, {})[status] = count
    report = {
        "clients": args.clients,
        "users": min(len(tokens), args.clients),
        "seconds": round(elapsed, 1),
        "requests": tally.requests,
        "requests_per_second": round(tally.requests / elapsed, 1),
        "statuses": by_kind,
        "server_errors": tally.server_errors,
        "transport_errors": {f"{kind}: {error}": count for (kind, error), count in tally.errors.items()},
        "api_processes": samples.api_processes,
        "api_postgres_connections_peak": max(samples.api, default=0),
        "api_postgres_connections_budget": budget,
        "database_connections_peak": max(samples.database, default=0),
        "samples": len(samples.api),
    }
    print(json.dumps(report, indent=2))
    healthy = not tally.errors and not tally.server_errors and report["api_postgres_connections_peak"] <= budget
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
