"""What a whole-system run (the chaos run, the benchmark) needs around its work: one run at a time on
this machine, a fresh database and Redis db, the fleet started and always stopped, and a clean exit on
Ctrl-C or SIGTERM."""

import argparse
import contextlib
import fcntl
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator

from chaos import data
from chaos.environment import LOG_DIR, ROOT, RunEnvironment
from chaos.processes import Fleet

STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f} s] {message}", flush=True)


@contextlib.contextmanager
def only_run(wait: float) -> Iterator[None]:
    """One run at a time on this machine: the chaos run and the benchmark share the CPU, and each run
    of a kind its database, Redis db and port."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with (LOG_DIR / "chaos.lock").open("w") as lock:
        give_up = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > give_up:
                    raise SystemExit("Another chaos or bench run holds .run/chaos/chaos.lock; giving up.") from None
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
    """Recreate the run's database and empty its Redis db, then point this process's Django at them."""
    say(f"resetting database {environment.db_name} and Redis {environment.redis_url}")
    data.reset_redis(environment.redis_url)
    data.reset_database(environment.db_name)
    environment.apply_to_this_process()
    import django

    django.setup()
    data.migrate()


@contextlib.contextmanager
def running_fleet(environment: RunEnvironment) -> Iterator[Fleet]:
    """The API, the workers and beat, ready; stopped when the block ends, however it ends."""
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


def main(run: Callable[[argparse.Namespace], int], options: argparse.Namespace, *, what: str) -> int:
    """Run `run(options)` from the project's root, alone on the machine; 130 if interrupted."""
    os.chdir(ROOT)
    interrupt_on_signals()
    try:
        with only_run(options.lock_wait):
            return run(options)
    except KeyboardInterrupt as interruption:
        print(f"{what} interrupted ({interruption}); every process of the run was stopped", file=sys.stderr)
        return 130
