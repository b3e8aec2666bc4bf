"""bench.figures and bench.metrics.per_order: the keys of bench/results/<timestamp>.json, the markdown
table and the checks, built from phase figures as the phases return them (no fleet, no load)."""

import pytest

from bench.amqp import AmqpRun
from bench.environment import amqp_environment, bench_environment, remote_environment
from bench.figures import assemble, checks
from bench.metrics import Snapshot, per_order
from bench.remote import Latency, RemoteRun
from bench.report import markdown
from chaos import rabbitmq

LATENCY = Latency(gateway_ms=200, data_platform_ms=100)


def window(cpu_seconds: dict[str, float]) -> Snapshot:
    """A 10 s window's counts and CPU, as metrics.window_marks measures it."""
    return Snapshot(
        at=10.0, counts={"tasks": 40, "sql:api": 60, "sql:worker": 330}, commands={"get": 100}, cpu=cpu_seconds
    )


def percentiles(p50: float) -> dict:
    return {"p50": p50, "p95": p50 * 2, "p99": p50 * 3}


def closed_loop(orders_per_s: float, cpu: dict, e2e_p50: float) -> dict:
    """A phases.saga_closed_loop result."""
    return {
        "clients": 16, "window_s": 10, "orders_per_s": orders_per_s, "accept_latency_ms": percentiles(20.0),
        "e2e_latency_ms": percentiles(e2e_p50), "orders": 120, "completed": 120, "failed": 0, "refused": 0,
        **per_order(window(cpu), int(orders_per_s * 10)),
    }  # fmt: skip


def half_load(e2e_p50: float) -> dict:
    return {"rate_per_s": 4.5, "window_s": 8, "orders": 36, "completed": 36, "accept_latency_ms": percentiles(15.0),
        "e2e_latency_ms": percentiles(e2e_p50)}  # fmt: skip


def monolith(orders_per_s: float, cpu: dict) -> dict:
    cost = per_order(window(cpu), int(orders_per_s * 10))
    return {
        "clients": 16, "window_s": 10, "orders_per_s": orders_per_s, "latency_ms": percentiles(90.0),
        "orders": 900, "refused": 0,
        **{key: cost[key] for key in ("sql_queries_per_order", "redis_commands_per_order", "cpu_ms_per_order",
            "cpu_ms_per_order_by_part", "cpu_busy_share")},
    }  # fmt: skip


def remote_run(**data_platform) -> RemoteRun:
    return RemoteRun(
        saga_closed=closed_loop(9.0, {"api": 0.9, "flow": 1.8}, e2e_p50=1750.0),
        saga_half=half_load(e2e_p50=320.0),
        monolith=monolith(11.0, {"api": 1.1}),
        data_platform={
            "delay_ms": 100, "posts": 126, "accepted": 126, "duplicates": 0, "refused": 0, "max_in_flight": 2,
            "by_event_type": {"OrderCompleted": 126},
            "deliveries": {"sent": 126, "dead": 0, "waiting": 0, "undelivered": 0, "settled_after_s": 0.5},
            **data_platform,
        },
    )  # fmt: skip


def amqp_run(**saga_closed) -> AmqpRun:
    return AmqpRun(
        saga_closed={
            **closed_loop(20.0, {"api": 2.0, "steps": 6.0, "flow": 4.0, "rabbitmq": 4.0}, 500.0),
            **saga_closed,
        },
        vhost="bench_shop_bench",
    )


def figures(remote: RemoteRun | None = None, amqp: AmqpRun | None = None) -> dict:
    saga = closed_loop(30.0, {"api": 3.0, "steps": 6.0, "flow": 6.0}, e2e_p50=400.0)
    saga["half_load"] = half_load(e2e_p50=60.0)
    built = assemble(
        run={"started_at": "20260101-000000", "quick": True, "workers": dict.fromkeys(("steps", "flow", "remote"), "")},
        noop={"per_s": 800.0},
        monolith=monolith(150.0, {"api": 15.0}),
        saga=saga,
        hot={"orders": 1000, "stock": 100, "accepted": 1000, "completed": 100, "failed": 900, "stock_left": 0,
            "decided_s": 20.0, "settle_s": 25.0},
        rush={"requests": 3000, "available": 100, "issued": 100, "sold_out": 2900, "issued_in_db": 100,
            "requests_per_s": 900.0},
        remote=remote or remote_run(),
        latency=LATENCY,
        amqp=amqp or amqp_run(),
    )  # fmt: skip
    built["checks"] = checks(built, {"saga orders, §5": []}, [])
    return built


def test_the_cpu_per_order_is_a_number_split_by_part():
    cost = per_order(window({"api": 3.0, "steps": 6.0}), 300)
    assert cost["cpu_ms_per_order"] == 30.0
    assert cost["cpu_ms_per_order_by_part"] == {"steps": 20.0, "api": 10.0}
    # with no order completed, every figure is there, and None
    assert set(per_order(window({}), 0)) == set(cost)
    assert per_order(window({}), 0)["cpu_ms_per_order"] is None


def test_every_run_has_the_remote_phases_and_the_cpu_per_order_keys():
    built = figures()

    assert built["saga_remote"]["orders_per_s"] == 9.0
    # the remote saga's end-to-end latency is the half-load one
    assert built["saga_remote"]["e2e_latency_ms"] == {"p50": 320.0, "p95": 640.0, "p99": 960.0}
    assert built["saga_remote"]["saturated_e2e_latency_ms"]["p50"] == 1750.0
    assert built["monolith_remote"]["orders_per_s"] == 11.0
    assert built["saga_remote"]["gateway_ms"] == built["monolith_remote"]["gateway_ms"] == 200
    for phase, expected in [("saga", 50.0), ("monolith", 10.0), ("saga_remote", 30.0), ("monolith_remote", 10.0)]:
        assert built[phase]["cpu_ms_per_order"] == pytest.approx(expected), phase
    assert built["checks"] == {"ok": True, "problems": []}


def test_the_markdown_table_shows_the_remote_phases():
    table = markdown(figures()).split("\nHow to read this")[0]

    assert "| saga remote (gateway 200 ms, data platform 100 ms): completed orders/s | 9.0 (16 clients" in table
    assert "| saga remote at half load (4.5 orders/s): end-to-end p50 / p95 / p99 | 320.0 / 640.0 / 960.0 ms |" in table
    assert "| monolith remote (gateway 200 ms): orders/s | 11.0 (16 clients" in table
    assert "| saga: CPU per order | 50.0 ms (steps 20.0, flow 20.0, api 10.0)" in table
    assert "126 events accepted" in table


def test_the_checks_cover_the_remote_phases():
    broken = remote_run(refused=1, accepted=125, deliveries={"sent": 126, "dead": 0, "settled_after_s": None})
    broken.saga_closed["failed"] = 2

    problems = figures(broken)["checks"]["problems"]

    assert "saga remote orders FAILED: 0 expected, 2 found" in problems
    assert "data platform: POSTs refused: 0 expected, 1 found" in problems
    assert "data platform: events accepted, one per delivery sent: 126 expected, 125 found" in problems
    assert "data platform: every delivery settled within 120 s: True expected, False found" in problems


def test_the_remote_fleet_runs_with_slow_partners_on_the_same_resources():
    environment = bench_environment()
    remote = remote_environment(environment, gateway_ms=200, data_platform_url="http://127.0.0.1:9/events")

    assert remote.settings()["PAYMENT_LATENCY_MS"] == "200"
    assert remote.settings()["DATA_PLATFORM_URL"] == "http://127.0.0.1:9/events"
    assert environment.settings()["PAYMENT_LATENCY_MS"] == "0" and environment.settings()["DATA_PLATFORM_URL"] == ""
    same = ("DJANGO_SECRET_KEY", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    assert {key: remote.settings()[key] for key in same} == {key: environment.settings()[key] for key in same}
    assert remote.database_url("x") == environment.database_url("x") and remote.api_port == environment.api_port
    assert remote.log_dir != environment.log_dir


def test_the_saga_on_rabbitmq_stands_beside_the_redis_saga_with_its_cpu_per_task():
    built = figures()

    # 40 tasks in each 10 s window: 0.2 tasks per order at 20/s, 0.13 at 30/s
    amqp, saga = built["saga_amqp"], built["saga"]
    assert amqp["orders_per_s"] == 20.0 and amqp["vhost"] == "bench_shop_bench"
    # the workers' parts only (not the api, not the broker): 10 s of steps and flow over 200 orders
    assert amqp["workers_cpu_ms_per_order"] == 50.0
    assert amqp["cpu_ms_per_task"] == pytest.approx(50.0 / 0.2)
    assert saga["workers_cpu_ms_per_order"] == 40.0
    assert saga["cpu_ms_per_task"] == pytest.approx(40.0 / 0.13, rel=0.01)
    table = markdown(built).split("\nHow to read this")[0]
    assert "| saga on RabbitMQ (publisher confirms): completed orders/s | 20.0 (Redis broker: 30.0;" in table
    assert (
        "| CPU per order / per task (workers' CPU per order / tasks per order), RabbitMQ vs Redis "
        "| 80.0 ms / 250.0 ms vs 50.0 ms / 307.69 ms" in table
    )
    assert "| saga on RabbitMQ: CPU per order | 80.0 ms (steps 30.0, flow 20.0, rabbitmq 20.0, api 10.0)" in table


def test_a_saga_on_rabbitmq_without_completed_orders_has_no_cpu_per_task_and_fails_the_checks():
    built = figures(amqp=amqp_run(**per_order(window({}), 0), failed=3, refused=1))

    assert built["saga_amqp"]["cpu_ms_per_task"] is None
    assert "saga on RabbitMQ orders FAILED: 0 expected, 3 found" in built["checks"]["problems"]
    assert "saga on RabbitMQ orders refused: 0 expected, 1 found" in built["checks"]["problems"]


def test_the_rabbitmq_fleet_runs_on_the_benchmarks_own_vhost_with_the_same_resources():
    environment = bench_environment(db_name="shop_bench_x")
    amqp = amqp_environment(environment)

    assert amqp.settings()["CELERY_BROKER_URL"] == "amqp://guest:guest@127.0.0.1:5672/bench_shop_bench_x"
    assert environment.settings()["CELERY_BROKER_URL"] == environment.redis_url
    same = ("DJANGO_SECRET_KEY", "REDIS_URL", "PAYMENT_LATENCY_MS", "DATA_PLATFORM_URL")
    assert {key: amqp.settings()[key] for key in same} == {key: environment.settings()[key] for key in same}
    assert amqp.log_dir != environment.log_dir


def test_a_run_deletes_only_a_chaos_or_bench_vhost():
    assert rabbitmq.vhost_of("shop_bench", prefix=rabbitmq.BENCH_VHOST_PREFIX) == "bench_shop_bench"
    with pytest.raises(ValueError):
        rabbitmq.vhost_of("shop_bench", prefix="")
    for vhost in ("/", "bench_", "chaos_", "shop"):
        with pytest.raises(ValueError):
            rabbitmq.fresh_vhost(vhost)
