"""What a whole-system run (the chaos run, the benchmark) needs around its work: one run at a time per
database and Redis db, a fresh database and Redis db, the fleet started and always stopped, and a clean
exit on Ctrl-C or SIGTERM."""

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator

import psycopg

from chaos import data, rabbitmq
from chaos.environment import ROOT, RunEnvironment, port_option, redis_location, unsafe_resources
from chaos.processes import Fleet

STARTED = time.monotonic()
LOCK_APP_NAME = "chaos-lock"
TRY_LOCK = "SELECT pg_try_advisory_lock(hashtextextended('shop run: ' || %s, 0))"


def say(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f} s] {message}", flush=True)


def add_resource_options(parser: argparse.ArgumentParser, *, db_name: str, redis_url: str, port: int) -> None:
    """--db-name, --redis-url and --port: what a run uses alone (it recreates the database and flushes the
    Redis db), so that runs from several checkouts can share a machine."""
    parser.add_argument("--db-name", default=db_name, help=f"database to recreate for the run (default {db_name})")
    parser.add_argument("--redis-url", default=redis_url, help=f"Redis db to flush for the run (default {redis_url})")
    parser.add_argument(
        "--port", type=port_option, default=port, help=f"the API's port; 0 or free: any free port (default {port})"
    )


def refuse_unsafe_resources(parser: argparse.ArgumentParser, options: argparse.Namespace) -> None:
    if reason := unsafe_resources(options.db_name, options.redis_url):
        parser.error(reason)


def held_resources(environment: RunEnvironment) -> list[str]:
    """What a run holds alone: its database and its Redis db, named the same from any checkout."""
    host, port, db = redis_location(environment.redis_url)
    return [f"database {environment.db_name}", f"Redis {host}:{port}/{db}"]


@contextlib.contextmanager
def only_run(environment: RunEnvironment, wait: float) -> Iterator[None]:
    """One run at a time per database and per Redis db, whichever checkout starts it: a run recreates
    its database and flushes its Redis db, so a second run on either would wreck the first. Runs on
    other databases and Redis dbs go on in parallel (the API port is checked when the fleet starts).

    The locks are PostgreSQL session advisory locks keyed by a hash of each name, held on the server's
    `postgres` database (advisory locks are scoped per database, and the run's own is dropped): every
    checkout using the server sees them, and they go with the connection when the process dies, however
    it dies. A run takes its database's lock before its Redis db's, so no two runs wait on each other."""
    with psycopg.connect(environment.maintenance_url(LOCK_APP_NAME), autocommit=True) as connection:
        give_up = time.monotonic() + wait
        for resource in held_resources(environment):
            while not connection.execute(TRY_LOCK, (resource,)).fetchone()[0]:
                if time.monotonic() > give_up:
                    raise SystemExit(f"Another chaos or bench run holds {resource}; giving up after {wait:.0f} s.")
                time.sleep(1)
        yield


def interrupt_on_signals() -> None:
    """SIGINT and SIGTERM raise KeyboardInterrupt in the main thread, so that `finally` stops the fleet
    (SIGINT too: a shell may start a background job with it ignored)."""

    def stop(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """A second Ctrl-C does not cut the clean-up short (it is bounded: see Fleet.stop_all)."""
    handlers = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def fresh_run(environment: RunEnvironment) -> None:
    """Recreate the run's database, empty its Redis db (and its RabbitMQ vhost on amqp), then point this
    process's Django at them."""
    say(f"resetting database {environment.db_name} and Redis {environment.redis_url}")
    data.reset_redis(environment.redis_url)
    if environment.vhost:
        say(f"recreating RabbitMQ vhost {environment.vhost}")
        rabbitmq.fresh_vhost(environment.vhost)
    data.reset_database(environment.db_name)
    environment.apply_to_this_process()
    import django

    django.setup()
    data.migrate()


@contextlib.contextmanager
def running_fleet(environment: RunEnvironment) -> Iterator[Fleet]:
    """The API, the workers and beat, ready; stopped when the block ends, however it ends."""
    environment.claim_api_port()
    fleet = Fleet(environment)
    try:
        fleet.start_all()
        fleet.wait_all_ready()
        started = ", ".join(f"{name} ({child.pid})" for name, child in fleet.children.items())
        say(f"started {started}; API on :{environment.api_port}")
        yield fleet
    finally:
        say("stopping every process of the run")
        with signals_ignored():
            fleet.stop_all()


def main(
    run: Callable[[argparse.Namespace, RunEnvironment], int],
    options: argparse.Namespace,
    environment: RunEnvironment,
    *,
    what: str,
) -> int:
    """Run `run(options, environment)` from the project's root, alone on its database and Redis db; 130
    if interrupted."""
    os.chdir(ROOT)
    interrupt_on_signals()
    try:
        with only_run(environment, options.lock_wait):
            return run(options, environment)
    except KeyboardInterrupt as interruption:
        print(f"{what} interrupted ({interruption}); every process of the run was stopped", file=sys.stderr)
        return 130
    finally:
        if environment.vhost:  # a run interrupted in the middle of a broker restart must not leave it down
            with signals_ignored():
                try:
                    rabbitmq.ensure_running()
                except rabbitmq.RabbitMQError as error:
                    print(f"RabbitMQ could not be started again: {error}", file=sys.stderr)
