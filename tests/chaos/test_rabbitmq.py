"""What a chaos run on `--broker amqp` does to RabbitMQ, checked without a whole run: its messages go to a
vhost of its own, which it empties at its start and never any other, and the purge fault loses what waits
in a saga queue."""

import random
import uuid
from types import SimpleNamespace

import pytest
from kombu import Connection, Queue

from chaos import __main__ as chaos_main
from chaos import rabbitmq
from chaos.environment import RunEnvironment
from chaos.faults import FaultInjector, schedule_of
from chaos.load import LoadResult
from common.queues import SAGA_GROUPS, queues_of


@pytest.fixture
def run_vhost():
    """A run's vhost for one test, deleted after it."""
    vhost = rabbitmq.vhost_of(f"test_{uuid.uuid4().hex[:12]}")
    rabbitmq.fresh_vhost(vhost)
    yield vhost
    rabbitmq.rabbitmqctl("delete_vhost", vhost)


def publish(vhost: str, queue: str, count: int) -> None:
    with Connection(rabbitmq.broker_url(vhost)) as connection:
        producer = connection.Producer()
        for number in range(count):
            producer.publish({"n": number}, routing_key=queue, declare=[Queue(queue, durable=True)], retry=True)


def test_on_amqp_the_messages_go_to_the_runs_vhost_and_everything_else_to_its_redis_db():
    options = chaos_main.parse(
        ["--broker", "amqp", "--db-name", "shop_chaos_b", "--redis-url", "redis://127.0.0.1:6379/9"]
    )

    settings = chaos_main.environment_of(options).settings()

    assert settings["CELERY_BROKER_URL"] == "amqp://guest:guest@127.0.0.1:5672/chaos_shop_chaos_b"
    assert settings["REDIS_URL"] == "redis://127.0.0.1:6379/9"
    assert chaos_main.environment_of(chaos_main.parse([])).vhost is None


def test_the_broker_faults_join_the_plan_on_amqp_only():
    assert [kind for _, kind in schedule_of(quick=True, broker="redis")] == ["kill", "flush", "cut", "crash"]
    assert [kind for _, kind in schedule_of(quick=True, broker="amqp")] == [
        "restart",
        "kill",
        "flush",
        "purge",
        "cut",
        "crash",
    ]
    full = [kind for _, kind in schedule_of(quick=False, broker="amqp")]
    assert (full.count("restart"), full.count("purge")) == (2, 2)


def test_a_run_starts_with_its_vhost_empty_and_leaves_the_others_alone(run_vhost):
    # given messages left in a run's vhost by a past run, and in another run's
    other = rabbitmq.vhost_of(f"test_{uuid.uuid4().hex[:12]}")
    rabbitmq.fresh_vhost(other)
    try:
        publish(run_vhost, "orders", 3)
        publish(other, "orders", 2)
        assert rabbitmq.ready_messages(run_vhost) == {"orders": 3}

        # when the run starts
        rabbitmq.fresh_vhost(run_vhost)

        # then its vhost is empty, and the other run's messages are still there
        assert rabbitmq.ready_messages(run_vhost) == {}
        assert rabbitmq.ready_messages(other) == {"orders": 2}
    finally:
        rabbitmq.rabbitmqctl("delete_vhost", other)


def test_a_run_never_deletes_a_vhost_but_its_own():
    with pytest.raises(ValueError):
        rabbitmq.fresh_vhost("/")


def test_the_purge_empties_the_fullest_saga_queue(run_vhost):
    # given messages waiting in two of the saga's queues
    fuller, other = queues_of(SAGA_GROUPS)[:2]
    publish(run_vhost, fuller, 5)
    publish(run_vhost, other, 1)
    environment = SimpleNamespace(vhost=run_vhost)
    injector = FaultInjector(
        fleet=SimpleNamespace(environment=environment), schedule=(), load=LoadResult(total=1), rng=random.Random(1)
    )

    # when the purge fault hits
    detail = injector._purge()

    # then the fuller queue lost its messages, and the other kept its one
    assert detail == f"purge_queue {fuller} with 5 messages waiting"
    assert rabbitmq.ready_messages(run_vhost) == {fuller: 0, other: 1}


def test_a_run_environment_refuses_an_unknown_broker():
    with pytest.raises(ValueError):
        RunEnvironment(broker="kafka")
