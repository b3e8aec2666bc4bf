"""`python -m bench [--quick]` (or `BENCH_QUICK=1 make bench`): the benchmark.

Starts the API on gunicorn, the Procfile's Celery workers and beat (chaos.processes.Fleet) against a
database (shop_bench, recreated; or --db-name) and Redis db (3; or --redis-url) of its own, on port 8766
(or --port; 0 or free: any free port), with the production settings plus the
bench app (config.settings.bench), and measures in one run:
1. the Celery no-op ceiling of that fleet;
2. the saga under closed-loop clients (completed orders/s, accept and end-to-end latency, tasks, SQL and
   Redis commands per order), then at half that rate in an open loop;
3. a hot product (1,000 orders for 100 units) and 4. a coupon rush (3,000 users for 100 coupons);
5. the monolith reference (bench/monolith.py) on the same server, database and orders;
6. then, on a second fleet whose gateway answers after 200 ms (--gateway-ms) and whose deliveries go to
   a real HTTP data platform answering after 100 ms (--data-platform-ms; bench/remote.py), the saga's
   saturation and its end-to-end latency at half of it, and the monolith;
7. then, on a third fleet whose messages go through RabbitMQ (a vhost of the benchmark's own, recreated;
   bench/amqp.py), the saga's closed loop again, beside the Redis broker's.
Writes bench/results/<timestamp>.json, .md and .png; exits non-zero if a check fails. Every child is
stopped at the end, whatever happened.
"""

import argparse
import dataclasses
import os
import platform
import sys
import time

import redis

from bench import data, phases, report
from bench.amqp import run_amqp_phase
from bench.environment import API_PORT, DB_NAME, REDIS_URL, RESULTS_DIR, bench_environment
from bench.figures import assemble, checks
from bench.remote import CLIENTS_FACTOR, Latency, run_remote_phases
from chaos import runner
from chaos.environment import ROOT, RunEnvironment
from chaos.processes import Fleet
from chaos.runner import STARTED, add_resource_options, fresh_run, refuse_unsafe_resources, running_fleet, say

CUSTOMER_BALANCE = 10_000_000  # the limit: far more than any phase spends per customer
HOT_CUSTOMERS = 200


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases (also BENCH_QUICK=1): under 3 minutes")
    parser.add_argument("--clients", type=int, help="closed-loop clients (default 16)")
    parser.add_argument(
        "--gateway-ms", type=int, default=Latency.gateway_ms, help="the remote phases' gateway latency (default 200)"
    )
    parser.add_argument(
        "--data-platform-ms",
        type=int,
        default=Latency.data_platform_ms,
        help="the remote phases' data platform latency (default 100)",
    )
    parser.add_argument("--lock-wait", type=float, default=600, help="seconds to wait for a chaos or bench run")
    add_resource_options(parser, db_name=DB_NAME, redis_url=REDIS_URL, port=API_PORT)
    options = parser.parse_args(argv)
    refuse_unsafe_resources(parser, options)
    options.quick = options.quick or os.environ.get("BENCH_QUICK", "").lower() in ("1", "true", "yes")
    return options


def prepare(environment, sizes: phases.Sizes) -> dict:
    fresh_run(environment)
    shop = {
        "catalog": data.create_catalog(prefix="Bench"),
        "saga": data.create_customers(count=sizes.clients * 2, prefix="saga", balance=CUSTOMER_BALANCE),
        "saga_amqp": data.create_customers(count=sizes.clients * 2, prefix="saga_amqp", balance=CUSTOMER_BALANCE),
        "half": data.create_customers(count=sizes.clients * 2, prefix="half", balance=CUSTOMER_BALANCE),
        "monolith": data.create_customers(count=sizes.clients * 2, prefix="monolith", balance=CUSTOMER_BALANCE),
        **{
            name: data.create_customers(count=sizes.clients * 2 * CLIENTS_FACTOR, prefix=name, balance=CUSTOMER_BALANCE)
            for name in ("saga_remote", "half_remote", "monolith_remote")
        },
        "hot": data.create_customers(count=HOT_CUSTOMERS, prefix="hot", balance=CUSTOMER_BALANCE),
    }
    say(f"shop: {len(shop['catalog'])} products, {sum(len(v) for k, v in shop.items() if k != 'catalog')} customers")
    return shop


def worker_commands(fleet: Fleet) -> dict[str, str]:
    """How each worker of the fleet was started (its pool and concurrency among the options)."""
    return {name: " ".join(fleet.children[name].role.command[1:]) for name in fleet.workers()}


def run(options: argparse.Namespace, environment: RunEnvironment) -> int:
    sizes = phases.Sizes.of(quick=options.quick)
    if options.clients:
        sizes = dataclasses.replace(sizes, clients=options.clients)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    say(f"benchmark, {'quick' if options.quick else 'full'} form; results will be bench/results/{stamp}.*")
    for key, value in environment.printable().items():
        print(f"    {key}={value}")
    shop = prepare(environment, sizes)

    from apps.orders.consistency import violations

    counters = redis.Redis.from_url(environment.redis_url)
    api_url = environment.api_url
    series: dict = {}
    found: dict[str, list[str]] = {}
    with running_fleet(environment) as fleet:
        stage = phases.Stage(api_url, shop["catalog"], sizes, counters, fleet.process_groups(), say)
        noop = phases.noop_ceiling(counters=counters, count=sizes.noop_tasks, say=say)
        saga, series["saga"] = phases.saga_closed_loop(stage, customers=shop["saga"])
        saga["half_load"], series["half_load"] = phases.saga_half_load(
            api_url=api_url,
            customers=shop["half"],
            catalog=shop["catalog"],
            rate=max(0.5, saga["orders_per_s"] / 2),
            seconds=sizes.half_load_window,
            say=say,
        )
        hot, series["hot_product"] = phases.hot_product(api_url=api_url, customers=shop["hot"], sizes=sizes, say=say)
        found["saga orders, §5"] = violations()
        saga["monitor"] = phases.monitor_run(say=say)
        say(f"invariants of docs/design.md §5 over every saga order: {len(found['saga orders, §5']) or 'none'} broken")
        rush = phases.coupon_rush(api_url=api_url, sizes=sizes, say=say)
        mono, series["monolith"] = phases.monolith(stage, customers=shop["monolith"])
        found["all orders, §5 but 5.4 (the monolith has no events)"] = violations(decisions=False)
        unexpected = fleet.unexpected_exits()
        workers = worker_commands(fleet)
    latency = Latency(gateway_ms=options.gateway_ms, data_platform_ms=options.data_platform_ms)
    remote = run_remote_phases(environment, shop=shop, sizes=sizes, counters=counters, latency=latency, say=say)
    series.update(remote.series)
    found["after the remote phases: all orders §5, the saga's §5.4"] = remote.violations
    monolith_users = [customer.id for customer in (*shop["monolith"], *shop["monolith_remote"])]
    amqp = run_amqp_phase(
        environment, shop=shop, sizes=sizes, counters=counters, monolith_users=monolith_users, say=say
    )
    series.update(amqp.series)
    found["after the saga on RabbitMQ: all orders §5, the saga's §5.4"] = amqp.violations
    run_figures = {
        "started_at": stamp,
        "quick": options.quick,
        "seconds": round(time.monotonic() - STARTED, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "host": platform.node()},
        "sizes": dataclasses.asdict(sizes),
        "environment": environment.printable(),
        "workers": workers,
    }
    figures = assemble(
        run=run_figures,
        noop=noop,
        monolith=mono,
        saga=saga,
        hot=hot,
        rush=rush,
        remote=remote,
        latency=latency,
        amqp=amqp,
    )
    figures["checks"] = checks(figures, found, [*unexpected, *remote.unexpected_exits, *amqp.unexpected_exits])
    paths = report.save(figures, series, RESULTS_DIR, stamp)
    print()
    print(report.markdown(figures).split("\nHow to read this")[0])
    for kind, path in paths.items():
        print(f"{kind}: {path.relative_to(ROOT)}")
    return 0 if figures["checks"]["ok"] else 1


def main(argv: list[str]) -> int:
    options = parse(argv)
    environment = bench_environment(db_name=options.db_name, redis_url=options.redis_url, api_port=options.port)
    return runner.main(run, options, environment, what="benchmark")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
