"""The five measurements of `make bench`, each a function that loads the running fleet and returns its
figures (plus the raw series the chart draws). Django is set up against the benchmark's database."""

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import redis

from bench import data, load, metrics
from bench.data import Customer
from chaos.report import wait_to_settle
from common.procfile import worker_queue_groups
from common.queues import queues_of

Say = Callable[[str], None]
ORDERS_PATH = "/api/v1/orders"
MONOLITH_PATH = "/bench/monolith/orders"


def noop_queues() -> tuple[str, ...]:
    """One queue of each worker of the fleet (the Procfile's): the saga's own workers run the no-op tasks."""
    return tuple(queues_of(groups)[0] for groups in worker_queue_groups().values())


@dataclass(frozen=True)
class Sizes:
    warmup: float  # seconds of load before a measurement window
    window: float  # seconds of the measurement window (closed loop)
    half_load_window: float
    clients: int  # closed-loop clients
    noop_tasks: int
    hot_orders: int
    hot_stock: int
    rush_users: int
    rush_coupons: int

    @classmethod
    def of(cls, *, quick: bool) -> "Sizes":
        if quick:
            return cls(
                warmup=3, window=10, half_load_window=8, clients=16, noop_tasks=2_000,
                hot_orders=1_000, hot_stock=100, rush_users=3_000, rush_coupons=100,
            )  # fmt: skip
        return cls(
            warmup=5, window=30, half_load_window=20, clients=16, noop_tasks=8_000,
            hot_orders=1_000, hot_stock=100, rush_users=3_000, rush_coupons=100,
        )  # fmt: skip


def _body(catalog: list[int]) -> Callable[[random.Random], dict]:
    return lambda rng: {"items": data.random_items(catalog, rng), "user_coupon_id": None}


def noop_ceiling(*, counters: redis.Redis, count: int, say: Say) -> dict:
    """No-op tasks through the saga's broker, worker pool and settings, shared evenly by the workers."""
    from bench.tasks import noop_task
    from config.celery import app

    field = f"task:{noop_task.name}"
    queues = noop_queues()

    def done() -> int:
        return int(counters.hget("bench:counts", field) or 0)

    def send(number: int) -> None:
        with app.producer_or_acquire() as producer:
            for index in range(number):
                noop_task.apply_async(queue=queues[index % len(queues)], producer=producer)

    def wait_for(total: int, give_up: float) -> float:
        while done() < total:
            if time.monotonic() > give_up:
                raise TimeoutError(f"only {done()} of {total} no-op tasks ran")
            time.sleep(0.05)
        return time.time()

    send(100)  # warm-up: every pool process has run a task
    wait_for(100, time.monotonic() + 60)
    say(f"no-op ceiling: sending {count} no-op tasks to queues {', '.join(queues)}")
    started = time.time()
    send(count)
    sent_s = time.time() - started
    with metrics.ticking(say, lambda: f"    {done() - 100} of {count} no-op tasks done"):
        finished = wait_for(100 + count, time.monotonic() + 300)
    rate = count / (finished - started)
    say(f"no-op ceiling: {rate:.0f} tasks/s (sent in {sent_s:.1f} s)")
    return {
        "tasks": count,
        "seconds": round(finished - started, 2),
        "sent_in_s": round(sent_s, 2),
        "per_s": round(rate, 1),
    }


def _window(samples: list[load.Sample], start: float, end: float) -> list[load.Sample]:
    return [sample for sample in samples if start <= sample.started_at < end]


@dataclass(frozen=True)
class Stage:
    """What a closed-loop measurement needs of the run: the API, the shop's catalog, the sizes, the
    counters, the fleet's process groups (for the CPU by part) and where progress goes."""

    api_url: str
    catalog: list[int]
    sizes: Sizes
    counters: redis.Redis
    groups: dict[int, str]
    say: Say


@dataclass(frozen=True)
class Measured:
    samples: load.Samples
    cost: metrics.Snapshot  # the counters and CPU over the measurement window
    started: float  # time.time() when the load began
    window_start: float
    window_end: float


def _closed_loop(
    stage: Stage, *, path: str, customers: list[Customer], line: Callable[[load.Samples], str], watcher=None
) -> Measured:
    """The clients ordering back-to-back through a warm-up and a measurement window, with progress lines."""
    sizes = stage.sizes
    started = time.time()
    window_start = started + sizes.warmup
    window_end = window_start + sizes.window
    samples = load.Samples()
    with (
        metrics.window_marks(stage.counters, stage.groups, start=window_start, end=window_end) as marks,
        metrics.ticking(stage.say, lambda: line(samples)),
    ):
        load.closed_loop(
            url=stage.api_url + path,
            customers=customers,
            order_body=_body(stage.catalog),
            clients=sizes.clients,
            seconds=sizes.warmup + sizes.window,
            watcher=watcher,
            samples=samples,
        )
    return Measured(samples, marks["end"].minus(marks["start"]), started, window_start, window_end)


def saga_closed_loop(stage: Stage, *, customers: list[Customer], label: str = "saga") -> tuple[dict, dict]:
    """Clients place orders back-to-back, each waiting for its order to be decided: the saga's saturation.
    `label` names the phase in the progress lines."""
    sizes = stage.sizes
    stage.say(
        f"{label}: {sizes.clients} closed-loop clients, {sizes.warmup:.0f} s warm-up + {sizes.window:.0f} s measured "
        "(each client waits for its order to be decided before the next)"
    )
    clock = time.time()

    def line(samples: load.Samples) -> str:
        return f"    {label}: {len(samples.items)} accepted, {samples.decided} decided, {time.time() - clock:.0f} s"

    with load.CompletionWatcher() as watcher:
        measured = _closed_loop(stage, path=ORDERS_PATH, customers=customers, line=line, watcher=watcher)
    samples, started = measured.samples, measured.started
    window_start, window_end = measured.window_start, measured.window_end
    times = metrics.order_times([sample.order_id for sample in samples.items if sample.order_id])
    completed_in_window = [t for t in times if t.status == "COMPLETED" and window_start <= t.decided_at < window_end]
    created_in_window = [t for t in times if window_start <= t.created_at < window_end]
    accepted = [s.seconds * 1000 for s in _window(samples.items, window_start, window_end) if s.status == 201]
    e2e = [t.e2e_ms for t in created_in_window if t.status == "COMPLETED"]
    orders_per_s = len(completed_in_window) / sizes.window
    cost = metrics.per_order(measured.cost, len(completed_in_window))
    figures = {
        "clients": sizes.clients,
        "window_s": sizes.window,
        "orders_per_s": round(orders_per_s, 1),
        "accept_latency_ms": metrics.percentiles(accepted),
        "e2e_latency_ms": metrics.percentiles(e2e),
        "orders": len(times),
        "completed": sum(1 for t in times if t.status == "COMPLETED"),
        "failed": sum(1 for t in times if t.status == "FAILED"),
        "refused": sum(1 for s in samples.items if s.status != 201),
        **cost,
    }
    series = {
        "window": (sizes.warmup, sizes.warmup + sizes.window),
        "accept_ms": accepted,
        "e2e_ms": e2e,
        "completed_per_s": metrics.per_second(
            [t.decided_at for t in times if t.status == "COMPLETED" and t.decided_at], start=started
        ),
    }
    stage.say(
        f"{label}: {orders_per_s:.1f} completed orders/s; accept p50 {figures['accept_latency_ms']['p50']} ms, "
        f"e2e p50 {figures['e2e_latency_ms']['p50']} ms p99 {figures['e2e_latency_ms']['p99']} ms; "
        f"{cost.get('tasks_per_order')} tasks, {cost.get('sql_queries_per_order')} SQL, "
        f"{cost.get('redis_commands_per_order')} Redis commands per order, {cost.get('cpu_ms_per_order')} ms CPU"
    )
    return figures, series


def saga_half_load(
    *,
    api_url: str,
    customers: list[Customer],
    catalog: list[int],
    rate: float,
    seconds: float,
    say: Say,
    label: str = "saga",
) -> tuple[dict, dict]:
    """Open loop at a fixed rate (half the saturation): the end-to-end latency of a saga not at its limit."""
    say(f"{label} at half load: {rate:.1f} orders/s for {seconds:.0f} s (open loop)")
    started = time.time()
    samples = load.Samples()
    with metrics.ticking(say, lambda: f"    {label} at half load: {len(samples.items)} placed"):
        samples = load.open_loop(
            url=api_url + ORDERS_PATH,
            customers=customers,
            order_body=_body(catalog),
            rate=rate,
            seconds=seconds,
            samples=samples,
        )
    ids = [sample.order_id for sample in samples.items if sample.order_id]
    times = _wait_decided(ids, say=say, what="half-load orders")
    e2e = [t.e2e_ms for t in times if t.status == "COMPLETED"]
    figures = {
        "rate_per_s": round(rate, 1),
        "window_s": seconds,
        "orders": len(ids),
        "completed": sum(1 for t in times if t.status == "COMPLETED"),
        "accept_latency_ms": metrics.percentiles([s.seconds * 1000 for s in samples.items if s.status == 201]),
        "e2e_latency_ms": metrics.percentiles(e2e),
    }
    e2e_ms = figures["e2e_latency_ms"]
    say(f"{label} at half load: e2e p50 {e2e_ms['p50']} ms, p99 {e2e_ms['p99']} ms")
    series = {
        "e2e_ms": e2e,
        "completed_per_s": metrics.per_second(
            [t.decided_at for t in times if t.status == "COMPLETED" and t.decided_at], start=started
        ),
    }
    return figures, series


def _wait_decided(order_ids: list[int], *, say: Say, what: str, give_up_after: float = 180) -> list[metrics.OrderTimes]:
    from django.db import close_old_connections

    give_up = time.monotonic() + give_up_after
    while True:
        close_old_connections()
        times = metrics.order_times(order_ids)
        open_ = sum(1 for t in times if t.decided_at is None or t.status not in ("COMPLETED", "FAILED"))
        if not open_:
            return times
        if time.monotonic() > give_up:
            say(f"    {open_} {what} still undecided after {give_up_after:.0f} s; giving up")
            return times
        time.sleep(0.25)


def _undecided(order_ids: list[int]) -> int:
    """How many of the orders are not decided yet; run by the progress thread, which closes its own
    database connection each time (nothing else would)."""
    from django.db import connection

    from apps.orders.models import Order, OrderStatus

    try:
        undecided = Order.objects.filter(pk__in=order_ids).exclude(
            status__in=(OrderStatus.COMPLETED, OrderStatus.FAILED)
        )
        return undecided.count()
    finally:
        connection.close()


def hot_product(*, api_url: str, customers: list[Customer], sizes: Sizes, say: Say) -> tuple[dict, dict]:
    """`hot_orders` orders of one unit each for a product with `hot_stock` units, all at once."""
    from apps.products.models import Stock

    product_id = data.create_product(name="Hot product", price=1_000, stock=sizes.hot_stock)
    say(f"hot product: {sizes.hot_orders} orders at once (50 threads) for a product with {sizes.hot_stock} units")
    requests_ = [
        (
            api_url + ORDERS_PATH,
            customers[n % len(customers)].token,
            {"items": [{"product_id": product_id, "quantity": 1}]},
        )
        for n in range(sizes.hot_orders)
    ]
    started, started_clock = time.time(), time.monotonic()
    samples = load.Samples()
    with metrics.ticking(say, lambda: f"    hot product: {len(samples.items)} placed"):
        samples = load.burst(requests_, threads=50, samples=samples)
    ids = [sample.order_id for sample in samples.items if sample.order_id]
    say(f"hot product: {len(ids)} accepted in {time.time() - started:.1f} s; waiting until all are settled")
    with metrics.ticking(say, lambda: f"    hot product: {_undecided(ids)} orders undecided"):
        # Settled: no order undecided, every listener task handled (the compensations included).
        settling = wait_to_settle(give_up_at=time.monotonic() + 240)
    times = metrics.order_times(ids)
    decided = [t.decided_at for t in times if t.decided_at]
    figures = {
        "orders": sizes.hot_orders,
        "stock": sizes.hot_stock,
        "accepted": len(ids),
        "completed": sum(1 for t in times if t.status == "COMPLETED"),
        "failed": sum(1 for t in times if t.status == "FAILED"),
        "stock_left": Stock.objects.get(product_id=product_id).quantity,
        "decided_s": round(max(decided) - started, 2) if decided else None,
        "settle_s": round(settling.quiet_at - started_clock, 2) if settling.quiet_at else None,
    }
    say(
        f"hot product: {figures['completed']} COMPLETED, {figures['failed']} FAILED, stock left "
        f"{figures['stock_left']}; all decided {figures['decided_s']} s and settled (compensated) "
        f"{figures['settle_s']} s after the first order"
    )
    series = {
        "completed_per_s": metrics.per_second([t.decided_at for t in times if t.status == "COMPLETED"], start=started),
        "failed_per_s": metrics.per_second([t.decided_at for t in times if t.status == "FAILED"], start=started),
    }
    return figures, series


def coupon_rush(*, api_url: str, sizes: Sizes, say: Say) -> dict:
    from apps.coupons.models import Coupon, UserCoupon

    users = data.create_customers(count=sizes.rush_users, prefix="rush")
    coupon_id = data.create_coupon(name="Rush coupon", quantity=sizes.rush_coupons)
    say(f"coupon rush: {len(users)} users issue one coupon with {sizes.rush_coupons} available (50 threads)")
    requests_ = [(f"{api_url}/api/v1/users/{u.id}/coupons/issue", u.token, {"coupon_id": coupon_id}) for u in users]
    samples = load.Samples()
    started = time.perf_counter()
    with metrics.ticking(say, lambda: f"    coupon rush: {len(samples.items)} answered"):
        samples = load.burst(requests_, threads=50, samples=samples)
    seconds = time.perf_counter() - started
    issued = sum(1 for s in samples.items if s.status == 201)
    sold_out = sum(1 for s in samples.items if s.status == 400 and s.code == "coupon_sold_out")
    figures = {
        "requests": len(samples.items),
        "available": sizes.rush_coupons,
        "issued": issued,
        "sold_out": sold_out,
        "other_answers": len(samples.items) - issued - sold_out,
        "issued_in_db": UserCoupon.objects.filter(coupon_id=coupon_id).count(),
        "issued_count": Coupon.objects.get(pk=coupon_id).issued_count,
        "seconds": round(seconds, 2),
        "requests_per_s": round(len(samples.items) / seconds, 1),
        "latency_ms": metrics.percentiles([s.seconds * 1000 for s in samples.items]),
    }
    say(f"coupon rush: {issued} issued, {sold_out} sold out, {figures['requests_per_s']} requests/s")
    return figures


def monolith(stage: Stage, *, customers: list[Customer], label: str = "monolith") -> tuple[dict, dict]:
    """The same orders, closed loop, against the one-transaction reference on the same server."""
    sizes = stage.sizes
    stage.say(
        f"{label}: {sizes.clients} closed-loop clients, {sizes.warmup:.0f} s warm-up + {sizes.window:.0f} s measured"
    )
    run = _closed_loop(
        stage,
        path=MONOLITH_PATH,
        customers=customers,
        line=lambda samples: f"    {label}: {len(samples.items)} answered",
    )
    samples, started = run.samples, run.started
    window_start, window_end = run.window_start, run.window_end
    measured = _window(samples.items, window_start, window_end)
    done = [s for s in measured if s.status == 201]
    latencies = [s.seconds * 1000 for s in done]
    figures = {
        "clients": sizes.clients,
        "window_s": sizes.window,
        "orders_per_s": round(len(done) / sizes.window, 1),
        "latency_ms": metrics.percentiles(latencies),
        "orders": sum(1 for s in samples.items if s.status == 201),
        "refused": sum(1 for s in samples.items if s.status != 201),
    }
    cost = metrics.per_order(run.cost, len(done))
    for key in (
        "sql_queries_per_order", "redis_commands_per_order", "cpu_ms_per_order", "cpu_ms_per_order_by_part",
        "cpu_busy_share",
    ):  # fmt: skip
        figures[key] = cost[key]
    stage.say(f"{label}: {figures['orders_per_s']} orders/s; latency p50 {figures['latency_ms']['p50']} ms, "
        f"p99 {figures['latency_ms']['p99']} ms; {figures['cpu_ms_per_order']} ms CPU per order")  # fmt: skip
    series = {
        "latency_ms": latencies,
        "completed_per_s": metrics.per_second(
            [s.started_at + s.seconds for s in samples.items if s.status == 201], start=started
        ),
    }
    return figures, series


def monitor_run(*, say: Say) -> dict:
    """One run of the consistency monitor (apps.orders.monitor) over what the saga phases left in its window,
    every order judged at rest: what beat pays for it every minute at this throughput."""
    from django.conf import settings
    from django.utils import timezone

    from apps.orders.monitor import consistency_monitor

    started = time.perf_counter()
    run = consistency_monitor(timezone.now() + timedelta(seconds=settings.CONSISTENCY_SETTLE_SECONDS + 1))
    took_ms = round((time.perf_counter() - started) * 1000, 1)
    say(f"consistency monitor: {run.orders} orders in its window, {run.found} broken, {took_ms} ms")
    return {"orders": run.orders, "found": run.found, "ms": took_ms}
