"""Figures from the samples, the database and the counters: percentiles, orders per second, and the
cost of an order in Celery tasks, SQL statements and Redis commands."""

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import redis

from bench.cpu import cpu_seconds_by_part
from bench.instrumentation import COUNTS_KEY
from chaos.report import percentile

# Redis commands the benchmark itself causes: its counters (HINCRBY, see bench/instrumentation.py),
# and its snapshots (INFO; the one HGETALL of a snapshot is left in, as the saga reads hashes too).
OWN_COMMANDS = ("hincrby", "info")


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50 / p95 / p99 by the nearest-rank method, rounded to 0.1."""
    return {f"p{round(share * 100)}": percentile(values, share, digits=1) for share in (0.50, 0.95, 0.99)}


@dataclass(frozen=True)
class Snapshot:
    at: float  # time.time()
    counts: dict[str, int]  # bench:counts (tasks, task:<name>, sql:api, sql:worker, requests...)
    commands: dict[str, int]  # Redis commandstats calls per command, server-wide
    cpu: dict[str, float]  # CPU seconds by part of the system (bench.cpu)

    def minus(self, earlier: "Snapshot") -> "Snapshot":
        def delta(now: dict, before: dict) -> dict:
            return {key: value - before.get(key, 0) for key, value in now.items() if value != before.get(key, 0)}

        return Snapshot(
            at=self.at - earlier.at,
            counts=delta(self.counts, earlier.counts),
            commands=delta(self.commands, earlier.commands),
            cpu=delta(self.cpu, earlier.cpu),
        )

    @property
    def saga_commands(self) -> int:
        return sum(calls for name, calls in self.commands.items() if name not in OWN_COMMANDS)


def snapshot(client: redis.Redis, groups: dict[int, str]) -> Snapshot:
    stats = client.info("commandstats")
    commands = {name.removeprefix("cmdstat_").split("|")[0]: 0 for name in stats}
    for name, value in stats.items():
        commands[name.removeprefix("cmdstat_").split("|")[0]] += int(value["calls"])
    counts = {key.decode(): int(value) for key, value in client.hgetall(COUNTS_KEY).items()}
    return Snapshot(at=time.time(), counts=counts, commands=commands, cpu=cpu_seconds_by_part(groups))


PER_ORDER_KEYS = (
    "cpu_ms_per_order",
    "cpu_ms_per_order_by_part",
    "cpu_busy_share",
    "tasks_per_order",
    "tasks_by_name_per_order",
    "sql_queries_per_order",
    "sql_queries_per_order_api",
    "sql_queries_per_order_workers",
    "redis_commands_per_order",
    "redis_commands_by_name_per_order",
)


def per_order(window: Snapshot, orders: int) -> dict:
    """The cost of one order over a steady-state window: counts in the window / orders completed in it.
    `cpu_ms_per_order` is the whole machine's; `cpu_ms_per_order_by_part` splits it (bench.cpu). With no
    order completed, every figure is None."""
    if not orders:
        return dict.fromkeys(PER_ORDER_KEYS)
    tasks_by_name = {
        key.removeprefix("task:"): round(value / orders, 2)
        for key, value in sorted(window.counts.items())
        if key.startswith("task:")
    }
    sql_api = window.counts.get("sql:api", 0)
    sql_worker = window.counts.get("sql:worker", 0)
    cpu = {part: round(seconds * 1000 / orders, 1) for part, seconds in sorted(window.cpu.items(), key=lambda i: -i[1])}
    return {
        "cpu_ms_per_order": round(sum(window.cpu.values()) * 1000 / orders, 1),
        "cpu_ms_per_order_by_part": cpu,
        "cpu_busy_share": round(sum(window.cpu.values()) / (window.at * (os.cpu_count() or 1)), 2),
        "tasks_per_order": round(window.counts.get("tasks", 0) / orders, 2),
        "tasks_by_name_per_order": tasks_by_name,
        "sql_queries_per_order": round((sql_api + sql_worker) / orders, 1),
        "sql_queries_per_order_api": round(sql_api / orders, 1),
        "sql_queries_per_order_workers": round(sql_worker / orders, 1),
        "redis_commands_per_order": round(window.saga_commands / orders, 1),
        "redis_commands_by_name_per_order": {
            name: round(calls / orders, 2)
            for name, calls in sorted(window.commands.items(), key=lambda item: -item[1])
            if name not in OWN_COMMANDS
        },
    }


@dataclass(frozen=True)
class OrderTimes:
    order_id: int
    status: str
    created_at: float  # epoch seconds
    decided_at: float | None  # completed_at or failed_at

    @property
    def e2e_ms(self) -> float | None:
        return None if self.decided_at is None else (self.decided_at - self.created_at) * 1000


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def order_times(order_ids: list[int]) -> list[OrderTimes]:
    from apps.orders.models import Order

    rows = Order.objects.filter(pk__in=order_ids).values_list("pk", "status", "created_at", "completed_at", "failed_at")
    return [
        OrderTimes(pk, status, created.timestamp(), _epoch(completed) or _epoch(failed))
        for pk, status, created, completed, failed in rows
    ]


def per_second(moments: list[float], *, start: float) -> list[int]:
    """How many of `moments` (epoch seconds) fall in each second after `start`."""
    if not moments:
        return []
    bins = [0] * (int(max(moments) - start) + 1)
    for moment in moments:
        if moment >= start:
            bins[int(moment - start)] += 1
    return bins


@contextlib.contextmanager
def window_marks(
    counters: redis.Redis, groups: dict[int, str], *, start: float, end: float
) -> Iterator[dict[str, Snapshot]]:
    """Snapshots of the counters and of the CPU by part taken at the epoch times `start` and `end` while the
    block runs the load; after the block, marks["end"].minus(marks["start"]) is the window's cost."""
    marks: dict[str, Snapshot] = {}

    def mark() -> None:
        time.sleep(max(0.0, start - time.time()))
        marks["start"] = snapshot(counters, groups)
        time.sleep(max(0.0, end - time.time()))
        marks["end"] = snapshot(counters, groups)

    thread = threading.Thread(target=mark, name="window-marks", daemon=True)
    thread.start()
    yield marks
    thread.join()


@contextlib.contextmanager
def ticking(say: Callable[[str], None], line: Callable[[], str], *, every: float = 5.0) -> Iterator[None]:
    """Print `line()` every `every` seconds while the block runs: the progress of a phase."""
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every):
            say(line())

    thread = threading.Thread(target=tick, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
