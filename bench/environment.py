"""Where the benchmark lives: its own database, Redis db, port and logs, and the environment of its
processes (chaos.environment.RunEnvironment with the benchmark's values). The database, Redis db and port
below are the defaults of `python -m bench --db-name --redis-url --port`; logs go to .run/bench/<database>.

Production settings plus the bench app (config.settings.bench), a random secret key, the shop's default
saga timings (deadline 60 s), a gateway that never declines and adds no latency, no data platform URL.
The remote phases run a second fleet with the same values but a gateway and a data platform as slow as
real ones (remote_environment), and a third the same values with its messages on RabbitMQ, in a vhost of
its own (amqp_environment).
"""

import copy
import os

from chaos import rabbitmq
from chaos.environment import NO_RATE_LIMITS, ROOT, RunEnvironment

DB_NAME = "shop_bench"
REDIS_URL = "redis://127.0.0.1:6379/3"
API_PORT = 8766
LOG_DIR = ROOT / ".run" / "bench"
RESULTS_DIR = ROOT / "bench" / "results"

VARIABLES = {
    "SAGA_DEADLINE_SECONDS": "60",
    "PAYMENT_DECLINE_RATE": "0",
    "PAYMENT_LATENCY_MS": "0",
    "DATA_PLATFORM_URL": "",  # deliveries are recorded locally
    # `LISTENER_BATCH_SIZE=1 make bench` measures the saga without batched listeners, for comparison.
    "LISTENER_BATCH_SIZE": os.environ.get("LISTENER_BATCH_SIZE", "20"),
    **NO_RATE_LIMITS,
}


def bench_environment(
    *, db_name: str = DB_NAME, redis_url: str = REDIS_URL, api_port: int = API_PORT
) -> RunEnvironment:
    return RunEnvironment(
        db_name=db_name,
        redis_url=redis_url,
        api_port=api_port,
        log_dir=LOG_DIR / db_name,
        settings_module="config.settings.bench",
        variables=VARIABLES,
    )


def remote_environment(environment: RunEnvironment, *, gateway_ms: int, data_platform_url: str) -> RunEnvironment:
    """The run's environment (same database, Redis db, port and secret key) with the simulated gateway
    answering after `gateway_ms` and deliveries POSTed to `data_platform_url`; its fleet logs to a
    directory of its own, so that the first fleet's logs stay."""
    remote = copy.copy(environment)
    remote.variables = {
        **environment.variables,
        "PAYMENT_LATENCY_MS": str(gateway_ms),
        "DATA_PLATFORM_URL": data_platform_url,
    }
    remote.log_dir = environment.log_dir / "remote"
    return remote


def bench_vhost(environment: RunEnvironment) -> str:
    """The benchmark's RabbitMQ vhost (`bench_<database>`), recreated before its fleet starts."""
    return rabbitmq.vhost_of(environment.db_name, prefix=rabbitmq.BENCH_VHOST_PREFIX)


def amqp_environment(environment: RunEnvironment) -> RunEnvironment:
    """The run's environment (same database, Redis db, port, secret key, partners) with the messages on
    RabbitMQ, in the benchmark's vhost; the Redis db keeps everything else (process hashes, locks, the
    counters). Its fleet logs to a directory of its own."""
    amqp = copy.copy(environment)
    amqp.variables = {**environment.variables, "CELERY_BROKER_URL": rabbitmq.broker_url(bench_vhost(environment))}
    amqp.log_dir = environment.log_dir / "amqp"
    return amqp
