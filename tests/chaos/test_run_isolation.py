"""What lets chaos and bench runs from several checkouts share a machine, checked without a whole run: the
options reach the run's environment, the DB cut hits only the run's database, the lock is per database
and Redis db, and the API port is free or refused."""

import random
import socket
import uuid
from types import SimpleNamespace

import psycopg
import pytest
import redis
from django.conf import settings

from chaos import __main__ as chaos_main
from chaos.environment import API_HOST, LOG_DIR, RunEnvironment
from chaos.faults import FaultInjector, terminate_backends
from chaos.load import LoadResult
from chaos.runner import only_run

SERVER = "postgres://postgres@127.0.0.1:5432"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def lock_test_environment(*, db_name: str, redis_host: str) -> RunEnvironment:
    """An environment only for the lock: a Redis host that exists nowhere, so that no real run holds it."""
    return RunEnvironment(db_name=db_name, redis_url=f"redis://{redis_host}:6379/1")


def test_the_resource_options_reach_the_run_environment():
    # given a chaos run asked for its own database, Redis db and any free port
    options = chaos_main.parse(["--quick", "--db-name", "shop_chaos_b", "--redis-url", "redis://127.0.0.1:6379/9"])
    options_free = chaos_main.parse(["--quick", "--port", "free"])

    # when its environment is made from the options
    environment = chaos_main.environment_of(options)

    # then every process of the run is pointed at them, and its logs go apart from other runs'
    assert environment.db_name == "shop_chaos_b"
    assert environment.database_url("chaos-worker").startswith(f"{SERVER}/shop_chaos_b?")
    assert environment.settings()["REDIS_URL"] == environment.settings()["CELERY_BROKER_URL"]
    assert environment.settings()["REDIS_URL"] == "redis://127.0.0.1:6379/9"
    assert environment.log_dir == LOG_DIR / "shop_chaos_b"
    assert environment.api_port == 8765
    assert chaos_main.environment_of(options_free).api_port == 0


def test_the_defaults_are_those_of_make_chaos():
    environment = chaos_main.environment_of(chaos_main.parse([]))

    assert (environment.db_name, environment.redis_url, environment.api_url) == (
        "shop_chaos",
        "redis://127.0.0.1:6379/4",
        "http://127.0.0.1:8765",
    )


def test_the_benchmark_takes_the_same_options():
    from bench import __main__ as bench_main
    from bench.environment import bench_environment

    options = bench_main.parse(["--db-name", "shop_bench_b", "--redis-url", "redis://127.0.0.1:6379/8", "--port", "0"])
    environment = bench_environment(db_name=options.db_name, redis_url=options.redis_url, api_port=options.port)

    assert (environment.db_name, environment.redis_url, environment.api_port) == (
        "shop_bench_b",
        "redis://127.0.0.1:6379/8",
        0,
    )
    assert environment.settings_module == "config.settings.bench"
    assert environment.log_dir.parent.name == "bench"


@pytest.mark.parametrize(
    "arguments",
    [["--db-name", "shop"], ["--db-name", "postgres"], ["--redis-url", "redis://127.0.0.1:6379/0"]],
)
def test_a_run_refuses_to_wipe_the_development_data(arguments):
    with pytest.raises(SystemExit):
        chaos_main.parse(arguments)


def test_a_free_port_is_claimed_when_the_fleet_starts():
    environment = RunEnvironment(api_port=0)

    port = environment.claim_api_port()

    assert port > 0
    assert environment.api_url == f"http://{API_HOST}:{port}"


def test_a_port_in_use_is_refused_rather_than_shared():
    # given something listening on a port (another checkout's API, say)
    with socket.socket() as listener:
        listener.bind((API_HOST, 0))
        listener.listen()
        environment = RunEnvironment(api_port=listener.getsockname()[1])

        # when a run asks for that port, then it refuses to start
        with pytest.raises(RuntimeError, match="in use"):
            environment.claim_api_port()


def test_the_cut_terminates_the_workers_of_the_runs_database_only():
    # given a "worker" connection to one database (the server's own, which always exists)
    worker_name = unique("chaos-worker-test")
    worker = psycopg.connect(f"{SERVER}/postgres?application_name={worker_name}", autocommit=True)
    try:
        with psycopg.connect(f"{SERVER}/postgres?application_name=chaos-faults-test", autocommit=True) as faults:
            # when another run, on another database, cuts its workers
            cut_elsewhere = terminate_backends(faults, db_name=unique("another_run"), application_name=worker_name)

            # then this worker's connection is untouched
            assert cut_elsewhere == 0
            assert worker.execute("SELECT 1").fetchone() == (1,)

            # and when the cut is for its own database, it is terminated
            assert terminate_backends(faults, db_name="postgres", application_name=worker_name) == 1
        with pytest.raises(psycopg.OperationalError):
            worker.execute("SELECT 1")
    finally:
        worker.close()


def test_the_flush_empties_the_runs_own_redis_db():
    # given keys in the Redis db of a run (here the tests' own db, which every test empties anyway)
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.set("chaos-flush-test", 1)
    fleet = SimpleNamespace(environment=RunEnvironment(redis_url=settings.REDIS_URL))
    injector = FaultInjector(fleet=fleet, schedule=(), load=LoadResult(total=1), rng=random.Random(1))

    # when the flush fault hits
    detail = injector._flush()

    # then that db is empty
    assert detail.startswith("FLUSHDB dropped")
    assert client.dbsize() == 0


def test_a_second_run_on_the_same_database_waits_and_one_on_another_goes_on():
    database, other_database = unique("lock_test_db"), unique("lock_test_db")
    redis_host, other_redis_host = unique("lock-test-redis"), unique("lock-test-redis")

    # given a run holding its database and Redis db
    with only_run(lock_test_environment(db_name=database, redis_host=redis_host), wait=0):
        # then a run on the same database, from any checkout, is refused (here: at once)
        with (
            pytest.raises(SystemExit, match=database),
            only_run(lock_test_environment(db_name=database, redis_host=other_redis_host), wait=0),
        ):
            pass
        # and so is a run on another database but the same Redis db
        with (
            pytest.raises(SystemExit, match=redis_host),
            only_run(lock_test_environment(db_name=other_database, redis_host=redis_host), wait=0),
        ):
            pass
        # while a run on another database and Redis db goes on
        with only_run(lock_test_environment(db_name=other_database, redis_host=other_redis_host), wait=0):
            pass

    # and when the first run ends, its database is free again
    with only_run(lock_test_environment(db_name=database, redis_host=other_redis_host), wait=0):
        pass
