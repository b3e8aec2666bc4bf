"""The run's figures, as bench/results/<timestamp>.json holds them, built from each phase's own, and the
checks a run must pass."""

from collections.abc import Iterable

from bench.amqp import AmqpRun
from bench.remote import Latency, RemoteRun


def saga_remote(run: RemoteRun, latency: Latency) -> dict:
    """The saga under remote latency: its closed-loop figures, but `e2e_latency_ms` at half its saturation
    (the saturated one is `saturated_e2e_latency_ms`), where a slow partner's cost shows undiluted."""
    closed = {key: value for key, value in run.saga_closed.items() if key != "e2e_latency_ms"}
    return {
        "gateway_ms": latency.gateway_ms,
        "data_platform_ms": latency.data_platform_ms,
        **closed,
        "e2e_latency_ms": run.saga_half.get("e2e_latency_ms"),
        "saturated_e2e_latency_ms": run.saga_closed.get("e2e_latency_ms"),
        "half_load": run.saga_half,
    }


def monolith_remote(run: RemoteRun, latency: Latency) -> dict:
    return {"gateway_ms": latency.gateway_ms, **run.monolith}


def cpu_per_task(phase: dict, workers: Iterable[str]) -> dict:
    """The workers' CPU per order (their parts of `cpu_ms_per_order_by_part`: pool and consumer) and per
    Celery task (that over `tasks_per_order`): what a broker costs the workers for each message."""
    by_part = phase.get("cpu_ms_per_order_by_part") or {}
    tasks = phase.get("tasks_per_order")
    if not by_part or not tasks:
        return {"workers_cpu_ms_per_order": None, "cpu_ms_per_task": None}
    workers_ms = sum(by_part.get(name, 0.0) for name in workers)
    return {"workers_cpu_ms_per_order": round(workers_ms, 1), "cpu_ms_per_task": round(workers_ms / tasks, 2)}


def saga_amqp(run: AmqpRun, workers: Iterable[str]) -> dict:
    return {"vhost": run.vhost, **run.saga_closed, **cpu_per_task(run.saga_closed, workers)}


def assemble(
    *,
    run: dict,
    noop: dict,
    monolith: dict,
    saga: dict,
    hot: dict,
    rush: dict,
    remote: RemoteRun,
    latency: Latency,
    amqp: AmqpRun,
) -> dict:
    """`run["workers"]` names the fleet's workers (their parts of the CPU by part)."""
    workers = list(run.get("workers", {}))
    return {
        "run": run,
        "celery_noop_tasks_per_s": noop["per_s"],
        "celery_noop": noop,
        "monolith": monolith,
        "saga": {**saga, **cpu_per_task(saga, workers)},
        "saga_amqp": saga_amqp(amqp, workers),
        "saga_remote": saga_remote(remote, latency),
        "monolith_remote": monolith_remote(remote, latency),
        "data_platform": remote.data_platform,
        "hot_product": hot,
        "coupon_rush": rush,
    }


def checks(figures: dict, found: dict[str, list[str]], unexpected_exits: list[str]) -> dict:
    """What must hold in every run: exact counts, no order refused or failed, every delivery sent, no
    invariant broken (`found`: the lines broken, by when they were checked), no process exited."""
    saga, hot, rush, mono = figures["saga"], figures["hot_product"], figures["coupon_rush"], figures["monolith"]
    saga_remote, mono_remote, amqp = figures["saga_remote"], figures["monolith_remote"], figures["saga_amqp"]
    platform = figures["data_platform"]
    deliveries = platform.get("deliveries", {})
    expectations = [
        ("hot product orders accepted", hot["orders"], hot["accepted"]),
        ("hot product COMPLETED", hot["stock"], hot["completed"]),
        ("hot product FAILED", hot["orders"] - hot["stock"], hot["failed"]),
        ("hot product stock left", 0, hot["stock_left"]),
        ("hot product settled (every compensation done) within 240 s", True, hot["settle_s"] is not None),
        ("coupons issued (201)", rush["available"], rush["issued"]),
        ("coupons issued in the database", rush["available"], rush["issued_in_db"]),
        ("coupon_sold_out answers", rush["requests"] - rush["available"], rush["sold_out"]),
        ("saga orders FAILED", 0, saga["failed"]),
        ("saga orders refused", 0, saga["refused"]),
        ("monolith orders refused", 0, mono["refused"]),
        ("saga remote orders FAILED", 0, saga_remote.get("failed")),
        ("saga remote orders refused", 0, saga_remote.get("refused")),
        ("saga remote half-load orders COMPLETED", saga_remote["half_load"].get("orders"),
            saga_remote["half_load"].get("completed")),
        ("monolith remote orders refused", 0, mono_remote.get("refused")),
        ("saga on RabbitMQ orders FAILED", 0, amqp.get("failed")),
        ("saga on RabbitMQ orders refused", 0, amqp.get("refused")),
        ("data platform: every delivery settled within 120 s", True, deliveries.get("settled_after_s") is not None),
        ("data platform: deliveries dead", 0, deliveries.get("dead")),
        ("data platform: events accepted, one per delivery sent", deliveries.get("sent"), platform.get("accepted")),
        ("data platform: POSTs refused", 0, platform.get("refused")),
    ]  # fmt: skip
    problems = [
        *(f"{what}: {count} expected, {actual} found" for what, count, actual in expectations if count != actual),
        *(f"invariant ({when}): {line}" for when, lines in found.items() for line in lines[:20]),
        *(f"process exited during the run: {line}" for line in unexpected_exits),
    ]
    return {"ok": not problems, "problems": problems}
