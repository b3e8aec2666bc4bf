"""The RabbitMQ side of a run on `--broker amqp`: the run's own vhost, and the broker's faults.

A run's messages live in a vhost of its own (`chaos_<database>`; the benchmark's `bench_<database>`),
deleted and added again at its start so that it starts empty, and never any other: runs from several
checkouts share the one RabbitMQ node.
Everything goes through `rabbitmqctl` (root on this machine), which needs no management plugin.

Stopping the node's RabbitMQ application cuts every connection of every vhost: the restart fault always
starts it again (`app_stopped` starts it in a `finally`), and a run on amqp makes sure it is running when
it ends, however it ends (`ensure_running`), since other work on the machine needs it.
"""

import contextlib
import subprocess
import time
from collections.abc import Iterator

RABBITMQCTL = "rabbitmqctl"
AMQP_SERVER = "amqp://guest:guest@127.0.0.1:5672"
USER = "guest"
VHOST_PREFIX = "chaos_"
BENCH_VHOST_PREFIX = "bench_"  # the benchmark's phase on RabbitMQ (bench.environment.amqp_environment)
RUN_VHOST_PREFIXES = (VHOST_PREFIX, BENCH_VHOST_PREFIX)  # the only vhosts fresh_vhost deletes
COMMAND_TIMEOUT = 60.0  # seconds: stop_app waits for the node to close its connections and queues
STARTED_PATIENCE = 60.0


class RabbitMQError(RuntimeError):
    pass


def vhost_of(db_name: str, *, prefix: str = VHOST_PREFIX) -> str:
    """The run's vhost, named after its database: one run at a time holds both (chaos.runner.only_run)."""
    if prefix not in RUN_VHOST_PREFIXES:
        raise ValueError(f"a run's vhost starts with one of {RUN_VHOST_PREFIXES}, not {prefix!r}")
    return f"{prefix}{db_name}"


def broker_url(vhost: str) -> str:
    return f"{AMQP_SERVER}/{vhost}"


def rabbitmqctl(*arguments: str, timeout: float = COMMAND_TIMEOUT) -> str:
    """Run one rabbitmqctl command (quiet, tab-separated output without headers); its stdout."""
    try:
        done = subprocess.run(
            [RABBITMQCTL, "-q", *arguments], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise RabbitMQError(f"rabbitmqctl {' '.join(arguments)}: {error}") from error
    if done.returncode != 0:
        raise RabbitMQError(f"rabbitmqctl {' '.join(arguments)} exited with {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def fresh_vhost(vhost: str) -> None:
    """Delete the run's vhost with whatever queues a past run left in it, add it again, let guest use it."""
    if not vhost.startswith(RUN_VHOST_PREFIXES) or vhost in RUN_VHOST_PREFIXES:
        raise ValueError(f"a run deletes only its own vhost ({'..., '.join(RUN_VHOST_PREFIXES)}...), not {vhost!r}")
    if vhost in rabbitmqctl("list_vhosts", "--no-table-headers", "name").split():
        rabbitmqctl("delete_vhost", vhost)
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, USER, ".*", ".*", ".*")


def ready_messages(vhost: str) -> dict[str, int]:
    """Messages ready (not held unacknowledged by a consumer) in each queue of the vhost."""
    ready = {}
    for line in rabbitmqctl("list_queues", "-p", vhost, "--no-table-headers", "name", "messages_ready").splitlines():
        name, _, count = line.rpartition("\t")
        if name and count.isdigit():
            ready[name] = int(count)
    return ready


def purge(vhost: str, queue: str) -> None:
    rabbitmqctl("purge_queue", "-p", vhost, queue)


def running() -> bool:
    """Whether the node's RabbitMQ application accepts connections."""
    try:
        rabbitmqctl("await_startup", "--timeout", "1", timeout=15)
    except RabbitMQError:
        return False
    return True


def start_app() -> None:
    rabbitmqctl("start_app")
    rabbitmqctl("await_startup", "--timeout", str(int(STARTED_PATIENCE)), timeout=STARTED_PATIENCE + 15)


@contextlib.contextmanager
def app_stopped() -> Iterator[None]:
    """The RabbitMQ application stopped for the block (every connection cut, listeners closed), started
    again when the block ends, however it ends."""
    try:
        rabbitmqctl("stop_app")
        yield
    finally:
        start_app()


def ensure_running() -> None:
    """Start the RabbitMQ application if a run left it stopped (interrupted in the middle of a restart)."""
    if not running():
        start_app()


def restart(*, down_for: float) -> tuple[float, float]:
    """Stop the application, keep it down `down_for` seconds, start it again. Returns how long it took
    to stop and how long from the start command until it accepted connections again."""
    began = time.monotonic()
    with app_stopped():
        stopped = time.monotonic()
        time.sleep(down_for)
        starting = time.monotonic()
    return stopped - began, time.monotonic() - starting
