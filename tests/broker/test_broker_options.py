"""The broker's settings follow its URL, and quorum queues are refused where they cannot work."""

import subprocess

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from common.broker_options import (
    broker_transport,
    broker_transport_options,
    check_server_supports,
    check_server_version,
    checked_queue_type,
)
from common.queues import declaration
from config.celery import app
from tests.broker.conftest import on_rabbitmq
from tests.broker.test_pools import start_worker_process
from tests.processes import stop

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"
REDIS = "redis://127.0.0.1:6379/0"


def test_rabbitmq_gets_publisher_confirms_and_its_own_transport():
    assert broker_transport(RABBITMQ) is None
    assert broker_transport_options(RABBITMQ) == {"confirm_publish": True}


def test_redis_gets_the_visibility_timeout_and_the_one_client_transport():
    assert broker_transport(REDIS) == "common.broker:Transport"
    assert broker_transport_options(REDIS) == {"visibility_timeout": 300}


def test_queue_types():
    assert checked_queue_type("classic", REDIS) == checked_queue_type("classic", RABBITMQ) == "classic"
    assert checked_queue_type("quorum", RABBITMQ) == "quorum"
    with pytest.raises(ImproperlyConfigured, match="needs a RabbitMQ broker"):
        checked_queue_type("quorum", REDIS)
    with pytest.raises(ImproperlyConfigured, match="the queue types are classic, quorum"):
        checked_queue_type("stream", RABBITMQ)


def test_quorum_queues_need_rabbitmq_4_0_1():
    check_server_version("4.0.1", "quorum")
    check_server_version("4.1.0+rc.1", "quorum")
    check_server_version("3.10.8", "classic")
    for older in ("3.10.8", "3.13.7", "4.0.0"):
        with pytest.raises(ImproperlyConfigured, match=f"needs RabbitMQ 4.0.1 or later.*this server is {older}"):
            check_server_version(older, "quorum")


def test_every_queue_is_durable_and_of_the_configured_type(settings):
    settings.CELERY_BROKER_QUEUE_TYPE = "quorum"
    queue = declaration("orders")
    assert queue.durable and queue.exchange.durable and not queue.auto_delete
    assert queue.queue_arguments == {"x-queue-type": "quorum"}
    assert queue.exchange.type == "topic"  # Celery's delayed delivery binds no direct exchange
    settings.CELERY_BROKER_QUEUE_TYPE = "classic"
    classic = declaration("orders")
    assert (classic.queue_arguments, classic.exchange.type) == ({"x-queue-type": "classic"}, "direct")
    assert app.conf.task_default_delivery_mode == "persistent"


@on_rabbitmq
def test_a_worker_refuses_quorum_queues_on_this_rabbitmq_3():
    with pytest.raises(ImproperlyConfigured, match=r"needs RabbitMQ 4\.0\.1 or later.*this server is 3\."):
        check_server_supports(app, "quorum")
    check_server_supports(app, "classic")  # no question asked


@on_rabbitmq
def test_a_worker_process_on_quorum_queues_refuses_to_start_on_this_rabbitmq_3(transactional_db):
    # given the worker's own settings asking for quorum queues on this RabbitMQ
    env = {"CELERY_BROKER_URL": django_settings.CELERY_BROKER_URL, "CELERY_BROKER_QUEUE_TYPE": "quorum"}
    # when it starts
    worker = start_worker_process("prefork", 1, env=env, output=subprocess.PIPE)
    try:
        stdout, _ = worker.communicate(timeout=60)
    finally:
        stop(worker)
    # then it exits at once, saying why
    assert worker.returncode == 1
    assert "needs RabbitMQ 4.0.1 or later" in stdout.decode()
