"""`python -m chaos [--orders N] [--quick] [--seed S] [--broker B] [--db-name D] [--redis-url U] [--port P]`.

Starts the API on gunicorn, two prefork worker fleets and beat against a database and Redis db of its own,
streams orders from many users while it kills workers, flushes Redis and cuts the workers' database
connections (on `--broker amqp`, messages on RabbitMQ: it also restarts RabbitMQ and purges a queue),
waits for the deadline and the sweep, then checks every invariant of docs/design.md §5 from the
database. Exits 0 only with no stuck order, no violation and no 5xx. Every child is stopped at the end,
whatever happened.

The database, Redis db and port default to shop_chaos, db 4 and 8765 (`make chaos`); the tests pass their
own (config.settings.test CHAOS_*) and any free port, so that two checkouts can run their tests at once.
"""

import argparse
import random
import sys

from chaos import data, runner
from chaos.environment import AMQP_BROKER, API_PORT, BROKERS, DB_NAME, REDIS_BROKER, REDIS_URL, RunEnvironment, Timings
from chaos.faults import FaultInjector, popular_list_reader, schedule_of
from chaos.load import LoadResult, issue_coupons, place_orders, plan_orders
from chaos.runner import add_resource_options, fresh_run, refuse_unsafe_resources, running_fleet, say

FULL_ORDERS = 500
QUICK_ORDERS = 100
DEFAULT_RATE = 10.0  # orders a second: about what the fleet settles on two cores, so faults hit a busy saga
POOR_SHARE = 0.2
SETTLE_MARGIN = 30.0  # seconds, on top of the deadline and three sweeps
MIN_SETTLE_WAIT = 90.0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="100 orders, one kill, one Redis flush, one DB cut, one crash (amqp: one restart, one purge)",
    )
    parser.add_argument("--orders", type=int, help=f"orders to place (default {FULL_ORDERS}, quick {QUICK_ORDERS})")
    parser.add_argument("--seed", type=int, help="seed of the plan of orders and faults (default: random)")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="orders per second at most")
    parser.add_argument(
        "--broker",
        choices=BROKERS,
        default=REDIS_BROKER,
        help="what carries the messages: the run's Redis db, or a RabbitMQ vhost of its own with its faults "
        f"(default {REDIS_BROKER})",
    )
    parser.add_argument("--lock-wait", type=float, default=600, help="seconds to wait for another chaos run")
    add_resource_options(parser, db_name=DB_NAME, redis_url=REDIS_URL, port=API_PORT)
    options = parser.parse_args(argv)
    refuse_unsafe_resources(parser, options)
    options.orders = options.orders or (QUICK_ORDERS if options.quick else FULL_ORDERS)
    if options.orders < 10:
        parser.error("--orders must be at least 10")
    if options.rate <= 0:
        parser.error("--rate must be greater than 0")
    options.seed = options.seed if options.seed is not None else random.randrange(1_000_000)
    return options


def environment_of(options: argparse.Namespace) -> RunEnvironment:
    return RunEnvironment(
        db_name=options.db_name, redis_url=options.redis_url, api_port=options.port, broker=options.broker
    )


def prepare(environment: RunEnvironment, *, users: int, rng: random.Random) -> data.Shop:
    fresh_run(environment)
    shop = data.create_shop(users=users, poor_share=POOR_SHARE, rng=rng)
    poor = sum(user.poor for user in shop.users)
    say(f"shop: {len(shop.users)} users ({poor} poor), {len(shop.plentiful) + len(shop.scarce)} products "
        f"({len(shop.scarce)} scarce), coupon {shop.coupon_id}")  # fmt: skip
    return shop


def unknown_depth_bound() -> float:
    """How long the relay leaves a message the broker lost when it cannot read its queue's depth: as
    long as a started task's time limit plus the handle margin (eventbus/resend.py). A RabbitMQ restart
    or purge loses messages, and a relay that cannot count a RabbitMQ queue sends them again only then:
    the wait covers it, so that a slow but sound recovery is not reported as stuck. It is a bound: the
    wait ends as soon as everything is quiet."""
    from django.conf import settings

    return float(settings.CELERY_TASK_TIME_LIMIT) + settings.OUTBOX_HANDLE_MARGIN_SECONDS


def run(options: argparse.Namespace, environment: RunEnvironment) -> int:
    rng = random.Random(options.seed)
    timings = Timings.of_run()
    form = "quick" if options.quick else "full"
    say(
        f"chaos run: {options.orders} orders, seed {options.seed}, {form} form, broker {options.broker}; "
        f"logs in {environment.log_dir}"
    )
    for key, value in environment.printable().items():
        print(f"    {key}={value}")
    shop = prepare(environment, users=min(50, max(10, options.orders // 10)), rng=rng)

    from chaos import report

    with running_fleet(environment) as fleet:
        coupons = issue_coupons(shop, api_url=environment.api_url)
        say(f"{len(coupons)} users issued the coupon through the API")

        plans = plan_orders(shop, count=options.orders, rng=rng)
        load = LoadResult(total=len(plans))
        faults = FaultInjector(
            fleet=fleet,
            schedule=schedule_of(quick=options.quick, broker=options.broker),
            load=load,
            rng=rng,
            after_flush=popular_list_reader(api_url=environment.api_url, token=shop.users[0].token),
        )
        say(f"placing {len(plans)} orders ({sum(p.with_coupon for p in plans)} with a coupon) under faults")
        faults.start()
        try:
            place_orders(plans, coupons, load, rate=options.rate, api_url=environment.api_url)
            faults.finish()
        finally:
            faults.abort()
        say(f"load done in {load.ended_at - load.started_at:.1f} s: {dict(load.answers)}")

        last = max(faults.last_at or 0.0, load.ended_at)
        wait = max(MIN_SETTLE_WAIT, timings.deadline + 3 * timings.sweep_interval + SETTLE_MARGIN)
        if options.broker == AMQP_BROKER:
            wait = max(wait, unknown_depth_bound() + SETTLE_MARGIN)
        say(f"waiting for every order to settle (at most {wait:.0f} s)")
        settling = report.wait_to_settle(give_up_at=last + wait)
        figures, found, stuck = report.gather(
            seed=options.seed,
            broker=options.broker,
            load=load,
            faults=faults,
            settling=settling,
            deadline=timings.deadline,
            sweep_interval=timings.sweep_interval,
            unexpected_exits=fleet.unexpected_exits(),
            started_at=runner.STARTED,
            api_url=environment.api_url,
        )
        if found or stuck:
            say(f"evidence saved to {report.save_evidence(found=found, stuck=stuck, log_dir=environment.log_dir)}")
    report.print_summary(figures)
    return 0 if figures.ok else 1


def main(argv: list[str]) -> int:
    options = parse(argv)
    return runner.main(run, options, environment_of(options), what="chaos run")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
