"""Where the chaos run lives (its own database, Redis db and port) and the environment of its processes.

Every process of the run (the API, the workers, beat, and this process's own Django) uses the production
settings against the database `shop_chaos` and Redis db 4, with saga timings short enough that a run ends
in a minute or two. The workers connect as `application_name=chaos-worker`, which is how the DB cut finds
their connections and only theirs.
"""

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
LOG_DIR = ROOT / ".run" / "chaos"

DB_NAME = "shop_chaos"
DB_SERVER = "postgres://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/4"
API_HOST = "127.0.0.1"
API_PORT = 8765
API_URL = f"http://{API_HOST}:{API_PORT}"

WORKER_APP_NAME = "chaos-worker"  # what the DB cut terminates
API_APP_NAME = "chaos-api"
MONITOR_APP_NAME = "chaos-monitor"  # this process: sets up data, watches, checks

# Short saga timings, so that the deadline and the sweep come into play within the run.
TIMINGS = {
    "SAGA_DEADLINE_SECONDS": "20",
    "SAGA_SWEEP_INTERVAL_SECONDS": "2",
    "SAGA_RECONCILE_AFTER_SECONDS": "5",
    "OUTBOX_RELAY_INTERVAL_SECONDS": "1",
    "OUTBOX_HANDLE_TIMEOUT_SECONDS": "10",
    "OUTBOX_DISPATCH_GRACE_SECONDS": "2",
}
BEHAVIOUR = {
    "PAYMENT_DECLINE_RATE": "0.1",
    "PAYMENT_LATENCY_MS": "20",
    "DATA_PLATFORM_URL": "",  # deliveries are recorded locally
}
# Inherited variables that would point a child somewhere else than the run's database and Redis.
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


class RunEnvironment:
    """The variables shared by every process of one run (one random secret key per run).

    The defaults are the chaos run's; the benchmark (bench/) runs the same fleet against its own database,
    Redis db, port, log directory, settings module and variables."""

    def __init__(
        self,
        *,
        db_name: str = DB_NAME,
        redis_url: str = REDIS_URL,
        api_port: int = API_PORT,
        log_dir: Path = LOG_DIR,
        settings_module: str = "config.settings.production",
        variables: dict[str, str] | None = None,  # default: the chaos timings and behaviour
    ) -> None:
        self.secret_key = secrets.token_urlsafe(48)  # 64 characters
        self.db_name = db_name
        self.redis_url = redis_url
        self.api_port = api_port
        self.api_url = f"http://{API_HOST}:{api_port}"
        self.log_dir = log_dir
        self.settings_module = settings_module
        self.variables = {**TIMINGS, **BEHAVIOUR} if variables is None else dict(variables)

    def database_url(self, application_name: str) -> str:
        # django-environ passes query parameters into OPTIONS, which psycopg sends to the server.
        return f"{DB_SERVER}/{self.db_name}?application_name={application_name}"

    def settings(self) -> dict[str, str]:
        return {
            "DJANGO_SETTINGS_MODULE": self.settings_module,
            "DJANGO_SECRET_KEY": self.secret_key,
            "DJANGO_ALLOWED_HOSTS": f"{API_HOST},localhost",
            "REDIS_URL": self.redis_url,
            "CELERY_BROKER_URL": self.redis_url,
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
