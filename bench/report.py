"""The results of a run: bench/results/<timestamp>.json, a markdown summary and a PNG chart beside it."""

import json
from pathlib import Path
from typing import Any

NOTES = """\
How to read this:
- **Closed loop** (saga): each of the clients places an order and waits until it is decided (COMPLETED
  or FAILED) before the next, so the saga, not the API, sets the pace; orders/s counts orders COMPLETED
  inside the measurement window (after a warm-up). The **monolith** clients place orders back-to-back
  (its answer is the completed order). Both use the same order (two catalog products, 1-2 units each,
  no coupon), the same gunicorn (2 processes × 4 threads), database and settings.
- **Accept latency**: the client's time for `POST /api/v1/orders`. **End-to-end**: `completed_at −
  created_at` of each order created in the window, from the database.
- **Half load**: an open loop (fixed rate, whatever the answers' pace) at half the measured saturation.
- **Per order** figures are counts over the steady-state window divided by the orders completed in it:
  Celery tasks run (every task, the beat's relay and sweep included; the breakdown is in the JSON);
  SQL statements executed by the API (every request: token authentication included) and by the workers
  (counted by an execute wrapper on every connection, bench/instrumentation.py); Redis commands from
  the server's `INFO commandstats`, broker traffic included, less the benchmark's own HINCRBY and INFO.
  Redis counts are **server-wide**: they are only meaningful when nothing else uses this Redis server
  during the run (other test runs on the machine inflate them).
- **CPU per order** (`cpu_ms_per_order` in the JSON): CPU seconds (user + system, from /proc) over the
  window divided by the orders completed in it, split by part of the system
  (`cpu_ms_per_order_by_part`): `api` (gunicorn), each worker of the fleet by its Procfile name (pool
  and consumer), `postgres`, `redis`, `rabbitmq`, the `load generator` (this process: the HTTP clients
  and the completion watcher), the `data platform` (remote phases), `beat` and `other` (anything else on the
  machine: at a low throughput it weighs heavily per order, and so does the PostgreSQL work of other
  databases). Busy share: that CPU time over the window's core-seconds; near 1.0 the machine, not the
  design, sets the pace.
- **No-op ceiling**: no-op tasks sent to one queue of each worker (bench.phases.noop_queues) of the same
  fleet (the Procfile's workers as started: `run.workers` in the JSON), same broker and Celery settings
  (late ack, prefetch 1).
- **Remote** phases: a second fleet, started after the first stopped, whose simulated gateway answers
  after `gateway_ms` and whose deliveries go to a real HTTP data platform on this machine
  (bench/dataplatform.py) answering after `data_platform_ms`. The saga's closed loop and half load, then
  the monolith (which pays inside its transaction, holding its stock and balance row locks for the
  gateway's latency), measured as above; `saga_remote`'s
  `e2e_latency_ms` is at half its saturation (`saturated_e2e_latency_ms` under the closed loop). Then
  every delivery is waited for (each completed order's, sent once) and §5 checked again.
- The counters cost one Redis round trip (a pipeline of HINCRBY) per task and per request, in the saga
  and the monolith alike, and in the no-op ceiling too; the benchmark process's own queries (watching
  orders, checking invariants) are not counted.
- The saga is saturated when its end-to-end latency is mostly queueing: compare it with the half-load
  figures. `--clients N` changes the number of closed-loop clients (default 16).
- Hot product: settled = every order decided and every listener task (the compensations) handled; the
  invariants of docs/design.md §5 are checked over every saga order then, and over every order (less §5.4, as
  the monolith publishes no events) at the end.
- **Saga on RabbitMQ**: a third fleet, started after the remote phases', with the first fleet's
  settings and partners but its messages on RabbitMQ (publisher confirms, durable queues;
  common/broker_options.py) in a vhost of the benchmark's own, recreated first; the saga's closed loop
  measured as above, then §5 checked again. Its Redis commands are the saga's own (process hashes,
  locks, rank), no broker traffic; `rabbitmq` is the RabbitMQ server's CPU (the Erlang VM, idle in the
  other phases). **CPU per task**: the workers' CPU per order (their parts: pool and consumer) over the
  Celery tasks per order, for both brokers.
- Everything runs on one machine with 2 cores: the load generator's threads, gunicorn, the workers,
  beat, PostgreSQL and Redis share them, and so does anything else running at the time.
"""


def _get(figures: dict, path: str) -> Any:
    value: Any = figures
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _p(figures: dict, path: str) -> str:
    p = _get(figures, path) or {}
    return f"{p.get('p50')} / {p.get('p95')} / {p.get('p99')}"


def _cpu(figures: dict, path: str) -> str:
    phase = _get(figures, path) or {}
    parts = ", ".join(f"{part} {ms}" for part, ms in (phase.get("cpu_ms_per_order_by_part") or {}).items())
    return f"{phase.get('cpu_ms_per_order')} ms ({parts}); busy share {phase.get('cpu_busy_share')}"


def _remote_rows(figures: dict) -> list[str]:
    saga, mono, platform = figures["saga_remote"], figures["monolith_remote"], figures["data_platform"]
    half = saga.get("half_load", {})
    slow = f"gateway {saga.get('gateway_ms')} ms, data platform {saga.get('data_platform_ms')} ms"
    deliveries = platform.get("deliveries", {})
    return [
        f"| saga remote ({slow}): completed orders/s | {saga.get('orders_per_s')} ({saga.get('clients')} clients, "
        f"{saga.get('window_s')} s) |",
        f"| saga remote at half load ({half.get('rate_per_s')} orders/s): end-to-end p50 / p95 / p99 "
        f"| {_p(figures, 'saga_remote.e2e_latency_ms')} ms |",
        f"| saga remote: accept latency p50 / p95 / p99 | {_p(figures, 'saga_remote.accept_latency_ms')} ms |",
        f"| saga remote: CPU per order | {_cpu(figures, 'saga_remote')} |",
        f"| monolith remote (gateway {mono.get('gateway_ms')} ms): orders/s | {mono.get('orders_per_s')} "
        f"({mono.get('clients')} clients, {mono.get('window_s')} s) |",
        f"| monolith remote: latency p50 / p95 / p99 | {_p(figures, 'monolith_remote.latency_ms')} ms |",
        f"| monolith remote: CPU per order | {_cpu(figures, 'monolith_remote')} |",
        f"| data platform ({platform.get('delay_ms')} ms): received | {platform.get('posts')} POSTs, "
        f"{platform.get('accepted')} events accepted, {platform.get('duplicates')} duplicates, "
        f"{platform.get('refused')} refused, at most {platform.get('max_in_flight')} at once; "
        f"{deliveries.get('sent')} deliveries sent |",
    ]


def _amqp_rows(figures: dict) -> list[str]:
    """The saga on RabbitMQ beside the Redis broker's saga, measured alike in the same run."""
    amqp, saga = figures.get("saga_amqp") or {}, figures["saga"]

    def per_task(phase: dict) -> str:
        return f"{phase.get('cpu_ms_per_order')} ms / {phase.get('cpu_ms_per_task')} ms"

    return [
        f"| saga on RabbitMQ (publisher confirms): completed orders/s | {amqp.get('orders_per_s')} "
        f"(Redis broker: {saga.get('orders_per_s')}; {amqp.get('clients')} clients, {amqp.get('window_s')} s) |",
        f"| saga on RabbitMQ: end-to-end latency p50 / p95 / p99 | {_p(figures, 'saga_amqp.e2e_latency_ms')} ms "
        f"(Redis broker: {_p(figures, 'saga.e2e_latency_ms')} ms) |",
        f"| CPU per order / per task (workers' CPU per order / tasks per order), RabbitMQ vs Redis | "
        f"{per_task(amqp)} vs {per_task(saga)} (workers {amqp.get('workers_cpu_ms_per_order')} vs "
        f"{saga.get('workers_cpu_ms_per_order')} ms per order, {amqp.get('tasks_per_order')} vs "
        f"{saga.get('tasks_per_order')} tasks) |",
        f"| saga on RabbitMQ: CPU per order | {_cpu(figures, 'saga_amqp')} |",
        f"| saga on RabbitMQ: SQL statements / Redis commands per order | {amqp.get('sql_queries_per_order')} / "
        f"{amqp.get('redis_commands_per_order')} (Redis broker: {saga.get('sql_queries_per_order')} / "
        f"{saga.get('redis_commands_per_order')}) |",
    ]


def markdown(figures: dict) -> str:
    saga, mono, hot, rush = figures["saga"], figures["monolith"], figures["hot_product"], figures["coupon_rush"]
    half = saga.get("half_load", {})
    lines = [
        f"# Benchmark {figures['run']['started_at']} ({'quick' if figures['run']['quick'] else 'full'})",
        "",
        "| measurement | result |",
        "|---|---|",
        f"| Celery no-op ceiling | {figures['celery_noop_tasks_per_s']} tasks/s |",
        f"| monolith: orders/s | {mono['orders_per_s']} ({mono['clients']} clients, {mono['window_s']} s) |",
        f"| monolith: latency p50 / p95 / p99 | {_p(figures, 'monolith.latency_ms')} ms |",
        f"| monolith: SQL statements / Redis commands per order | {mono.get('sql_queries_per_order')} / "
        f"{mono.get('redis_commands_per_order')} |",
        f"| monolith: CPU per order | {_cpu(figures, 'monolith')} |",
        f"| saga: completed orders/s | {saga['orders_per_s']} ({saga['clients']} clients, {saga['window_s']} s) |",
        f"| saga: accept latency p50 / p95 / p99 | {_p(figures, 'saga.accept_latency_ms')} ms |",
        f"| saga: end-to-end latency p50 / p95 / p99 | {_p(figures, 'saga.e2e_latency_ms')} ms |",
        f"| saga at half load ({half.get('rate_per_s')} orders/s): end-to-end p50 / p95 / p99 "
        f"| {_p(figures, 'saga.half_load.e2e_latency_ms')} ms |",
        f"| saga: Celery tasks per order | {saga.get('tasks_per_order')} |",
        f"| saga: SQL statements per order (API + workers) | {saga.get('sql_queries_per_order')} "
        f"({saga.get('sql_queries_per_order_api')} + {saga.get('sql_queries_per_order_workers')}) |",
        f"| saga: Redis commands per order | {saga.get('redis_commands_per_order')} |",
        f"| saga: CPU per order | {_cpu(figures, 'saga')} |",
        *_amqp_rows(figures),
        f"| consistency monitor: one run over its window | {saga.get('monitor', {}).get('ms')} ms for "
        f"{saga.get('monitor', {}).get('orders')} orders, {saga.get('monitor', {}).get('found')} broken |",
        *_remote_rows(figures),
        f"| hot product: {hot['orders']} orders for {hot['stock']} units | {hot['completed']} COMPLETED, "
        f"{hot['failed']} FAILED, stock left {hot['stock_left']}; all decided in {hot['decided_s']} s, "
        f"settled (compensations done) in {hot['settle_s']} s |",
        f"| coupon rush: {rush['requests']} users for {rush['available']} coupons | {rush['issued']} issued, "
        f"{rush['sold_out']} sold out, {rush['requests_per_s']} requests/s |",
        "",
        f"Checks: {'all passed' if figures['checks']['ok'] else 'FAILED'}",
        *[f"- {problem}" for problem in figures["checks"]["problems"]],
        "",
        f"Tasks per order by name: `{json.dumps(saga.get('tasks_by_name_per_order', {}))}`",
        "",
        NOTES,
    ]
    return "\n".join(lines)


def chart(figures: dict, series: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    fig, (left, middle, right) = pyplot.subplots(1, 3, figsize=(18, 5.5))
    distributions = [
        ("monolith: answer", series["monolith"]["latency_ms"]),
        ("saga: accept (POST answered)", series["saga"]["accept_ms"]),
        ("saga: end-to-end, saturated", series["saga"]["e2e_ms"]),
        ("saga: end-to-end, half load", series["half_load"]["e2e_ms"]),
        ("monolith remote: answer", series["monolith_remote"]["latency_ms"]),
        ("saga remote: end-to-end, half load", series["half_load_remote"]["e2e_ms"]),
    ]
    for label, values in distributions:
        if values:
            ordered = sorted(values)
            shares = [(index + 1) / len(ordered) for index in range(len(ordered))]
            left.step(ordered, shares, where="post", label=f"{label} (n={len(ordered)})")
    left.set_xscale("log")
    left.set_xlabel("latency (ms, log scale)")
    left.set_ylabel("share of orders at or below")
    left.set_title("Latency distributions")
    for share in (0.5, 0.95, 0.99):
        left.axhline(share, color="grey", linewidth=0.5, linestyle=":")
    left.legend(fontsize=8, loc="lower right")
    left.grid(True, which="both", alpha=0.3)

    for label, values in [
        (f"saga, {figures['saga']['clients']} closed-loop clients", series["saga"]["completed_per_s"]),
        (f"saga, half load ({figures['saga']['half_load']['rate_per_s']}/s)", series["half_load"]["completed_per_s"]),
        (f"monolith, {figures['monolith']['clients']} clients", series["monolith"]["completed_per_s"]),
        ("saga remote, closed loop", series["saga_remote"]["completed_per_s"]),
        ("monolith remote", series["monolith_remote"]["completed_per_s"]),
        ("saga on RabbitMQ, closed loop", series.get("saga_amqp", {}).get("completed_per_s", [])),
    ]:
        middle.plot(range(len(values)), values, label=label, drawstyle="steps-post")
    window_start, window_end = series["saga"]["window"]
    middle.axvspan(window_start, window_end, color="grey", alpha=0.12, label="measurement window")
    middle.set_xlabel("seconds since the phase started (warm-up included)")
    middle.set_ylabel("orders COMPLETED per second")
    middle.set_title("Completed orders over time")
    middle.legend(fontsize=8)
    middle.grid(True, alpha=0.3)

    hot = series["hot_product"]
    right.plot(range(len(hot["completed_per_s"])), hot["completed_per_s"], label="COMPLETED", drawstyle="steps-post")
    right.plot(range(len(hot["failed_per_s"])), hot["failed_per_s"], label="FAILED", drawstyle="steps-post")
    right.set_xlabel("seconds since the first order")
    right.set_ylabel("orders decided per second")
    hot_figures = figures["hot_product"]
    right.set_title(f"Hot product: {hot_figures['orders']} orders for {hot_figures['stock']} units")
    right.legend(fontsize=8)
    right.grid(True, alpha=0.3)

    fig.suptitle(f"make bench, {figures['run']['started_at']} ({'quick' if figures['run']['quick'] else 'full'})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot.close(fig)


def save(figures: dict, series: dict, directory: Path, stamp: str) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": directory / f"{stamp}.json",
        "markdown": directory / f"{stamp}.md",
        "chart": directory / f"{stamp}.png",
    }
    paths["json"].write_text(json.dumps(figures, indent=2) + "\n")
    paths["markdown"].write_text(markdown(figures) + f"\n![chart]({paths['chart'].name})\n")
    chart(figures, series, paths["chart"])
    return paths
