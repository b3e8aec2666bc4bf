"""Where the chaos run lives (its own database, Redis db, port, RabbitMQ vhost) and its processes' environment.

Every process of the run (the API, the workers, beat, and this process's own Django) uses the production
settings against the run's database and Redis db, with saga timings short enough that a run ends in a
minute or two. By default those are the database `shop_chaos`, Redis db 4 and port 8765 (`make chaos`);
`python -m chaos --db-name --redis-url --port` picks others, so that runs from several checkouts share a
machine. `--broker amqp` carries the messages on RabbitMQ instead, in a vhost of the run's own
(chaos.rabbitmq), while the Redis db keeps everything else. The workers connect as
`application_name=chaos-worker`, which, with the run's database name, is how the DB cut finds their
connections and only theirs.
"""

import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

import redis

from chaos import rabbitmq

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
LOG_DIR = ROOT / ".run" / "chaos"

# The defaults of `python -m chaos`; a run's own values are on its RunEnvironment.
DB_NAME = "shop_chaos"
DB_SERVER = "postgres://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/4"
API_HOST = "127.0.0.1"
API_PORT = 8765
FREE_PORT = 0  # as --port (or --port free): any port free when the fleet starts

REDIS_BROKER, AMQP_BROKER = "redis", "amqp"
BROKERS = (REDIS_BROKER, AMQP_BROKER)

# A run drops its database and flushes its Redis db: never these (the server's own and development's).
PROTECTED_DATABASES = frozenset({"postgres", "template0", "template1", "shop"})
PROTECTED_REDIS_DB = 0

WORKER_APP_NAME = "chaos-worker"  # what the DB cut terminates
API_APP_NAME = "chaos-api"
MONITOR_APP_NAME = "chaos-monitor"  # this process: sets up data, watches, checks

# Short saga timings, so that the deadline and the sweep come into play within the run. A task the flush
# lost is sent again within the start grace plus a relay interval: every compensation is done within 10 s of
# its order's failure. A started task keeps the production bound (its time limit plus the handle margin).
TIMINGS = {
    "SAGA_DEADLINE_SECONDS": "20",
    "SAGA_SWEEP_INTERVAL_SECONDS": "2",
    "SAGA_RECONCILE_AFTER_SECONDS": "5",
    "OUTBOX_RELAY_INTERVAL_SECONDS": "1",
    "OUTBOX_DISPATCH_GRACE_SECONDS": "2",
    "OUTBOX_START_GRACE_SECONDS": "2",
    # The consistency monitor runs through the faults, and must find nothing.
    "CONSISTENCY_MONITOR_INTERVAL_SECONDS": "5",
    "CONSISTENCY_SETTLE_SECONDS": "15",
}
# The load is a few dozen users placing orders as fast as the run wants: no per-client rate limits.
NO_RATE_LIMITS = {
    f"THROTTLE_RATE_{scope}": "" for scope in ("ORDER_CREATE", "ORDER_CANCEL", "BALANCE_CHARGE", "COUPON_ISSUE")
}
BEHAVIOUR = {
    "PAYMENT_DECLINE_RATE": "0.1",
    "PAYMENT_LATENCY_MS": "20",
    "DATA_PLATFORM_URL": "",  # deliveries are recorded locally
    **NO_RATE_LIMITS,
}
# Inherited variables that would point a child somewhere else than the run's database, Redis and broker.
DROPPED = ("CELERY_BROKER_URL", "DJANGO_DEBUG", "DATABASE_CONN_MAX_AGE")


@dataclass(frozen=True)
class Timings:
    deadline: float
    sweep_interval: float

    @classmethod
    def of_run(cls) -> "Timings":
        return cls(
            deadline=float(TIMINGS["SAGA_DEADLINE_SECONDS"]),
            sweep_interval=float(TIMINGS["SAGA_SWEEP_INTERVAL_SECONDS"]),
        )


def port_option(text: str) -> int:
    """An argparse type for --port: a TCP port, or 0 / "free" for any port free when the fleet starts."""
    if text.strip().lower() == "free":
        return FREE_PORT
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError(f"no TCP port: {port}")
    return port


def free_port() -> int:
    """A port nobody listens on now (the kernel's pick): taken just before the API binds it, so that
    nothing else is likely to take it in between."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((API_HOST, 0))
        return probe.getsockname()[1]


def port_in_use(port: int) -> bool:
    """Whether something listens on the port (binding as gunicorn does, with SO_REUSEADDR, so that
    connections of a past run in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((API_HOST, port))
        except OSError:
            return True
        return False


def redis_location(redis_url: str) -> tuple[str, int, int]:
    """Host, port and db of a Redis URL, whichever way the URL spells the db."""
    kwargs = redis.ConnectionPool.from_url(redis_url).connection_kwargs
    return kwargs.get("host", "localhost"), int(kwargs.get("port", 6379)), int(kwargs.get("db", 0))


def unsafe_resources(db_name: str, redis_url: str) -> str | None:
    """Why a run must not use this database or Redis db (it drops the one and flushes the other), or
    None: a mistyped --db-name or --redis-url must not wipe the development data."""
    if db_name in PROTECTED_DATABASES:
        return f"a run recreates its database: not {db_name!r} ({', '.join(sorted(PROTECTED_DATABASES))})"
    if redis_location(redis_url)[2] == PROTECTED_REDIS_DB:
        return f"a run flushes its Redis db: not db {PROTECTED_REDIS_DB}, development's ({redis_url})"
    return None


class RunEnvironment:
    """The variables shared by every process of one run (one random secret key per run).

    The defaults are the chaos run's; the benchmark (bench/) runs the same fleet against its own database,
    Redis db, port, log directory, settings module and variables. `api_port` FREE_PORT (0) means any free
    port, taken when the fleet starts (claim_api_port). The logs go to a directory per database, so that
    two runs from one checkout never write into each other's logs."""

    def __init__(
        self,
        *,
        db_name: str = DB_NAME,
        redis_url: str = REDIS_URL,
        api_port: int = API_PORT,
        log_dir: Path | None = None,  # default: .run/chaos/<db_name>
        settings_module: str = "config.settings.production",
        variables: dict[str, str] | None = None,  # default: the chaos timings and behaviour
        broker: str = REDIS_BROKER,
    ) -> None:
        if broker not in BROKERS:
            raise ValueError(f"no broker {broker!r}: {', '.join(BROKERS)}")
        self.secret_key = secrets.token_urlsafe(48)  # 64 characters
        self.db_name = db_name
        self.redis_url = redis_url
        self.api_port = api_port
        self.log_dir = LOG_DIR / db_name if log_dir is None else log_dir
        self.settings_module = settings_module
        self.variables = {**TIMINGS, **BEHAVIOUR} if variables is None else dict(variables)
        self.broker = broker

    @property
    def vhost(self) -> str | None:
        """The run's own RabbitMQ vhost on amqp (recreated at its start); None on Redis."""
        return rabbitmq.vhost_of(self.db_name) if self.broker == AMQP_BROKER else None

    @property
    def broker_url(self) -> str:
        """Redis: the run's Redis db carries the messages too. amqp: the run's vhost, while the Redis db
        keeps the process hashes, locks and rank."""
        return rabbitmq.broker_url(self.vhost) if self.vhost else self.redis_url

    @property
    def api_url(self) -> str:
        return f"http://{API_HOST}:{self.api_port}"

    def claim_api_port(self) -> int:
        """Just before the API starts: take a free port if any was asked for, or make sure the one asked
        for is free. Otherwise gunicorn would fail to bind while the readiness check, and then the load,
        talked to whatever listens there (another checkout's chaos API, say)."""
        if self.api_port == FREE_PORT:
            self.api_port = free_port()
        elif port_in_use(self.api_port):
            raise RuntimeError(f"port {self.api_port} is in use (another run's API?): pass another --port, or free")
        return self.api_port

    def database_url(self, application_name: str) -> str:
        # django-environ passes query parameters into OPTIONS, which psycopg sends to the server.
        return f"{DB_SERVER}/{self.db_name}?application_name={application_name}"

    @staticmethod
    def maintenance_url(application_name: str) -> str:
        """The server's `postgres` database: where a run drops and creates its own, and holds its lock."""
        return f"{DB_SERVER}/postgres?application_name={application_name}"

    def settings(self) -> dict[str, str]:
        return {
            "DJANGO_SETTINGS_MODULE": self.settings_module,
            "DJANGO_SECRET_KEY": self.secret_key,
            "DJANGO_ALLOWED_HOSTS": f"{API_HOST},localhost",
            "REDIS_URL": self.redis_url,
            "CELERY_BROKER_URL": self.broker_url,
            "LOG_LEVEL": "INFO",
            **self.variables,
        }

    def for_process(self, application_name: str) -> dict[str, str]:
        """The full environment of a child process that connects to the database as `application_name`."""
        inherited = {key: value for key, value in os.environ.items() if key not in DROPPED}
        return {
            **inherited,
            **self.settings(),
            "DATABASE_URL": self.database_url(application_name),
            "PYTHONUNBUFFERED": "1",
        }

    def apply_to_this_process(self) -> None:
        """Point this process's Django at the run (call before django.setup())."""
        for key in DROPPED:
            os.environ.pop(key, None)
        os.environ.update(self.settings())
        os.environ["DATABASE_URL"] = self.database_url(MONITOR_APP_NAME)

    def printable(self) -> dict[str, str]:
        shown = {key: value for key, value in self.settings().items() if key != "DJANGO_SECRET_KEY"}
        return {**shown, "DATABASE_URL": self.database_url("<process>"), "DJANGO_SECRET_KEY": "<random, 64 chars>"}
