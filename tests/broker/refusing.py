"""A broker that refuses every message, for real, on either broker: what the outbox must survive."""

import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from common.broker_options import is_amqp
from common.redis import redis_client
from tests.broker.rabbitmq import clear_policy, set_policy

REFUSE_POLICY = "tests-refuse-every-publish"


@contextmanager
def broker_refusing_writes() -> Iterator[None]:
    """Until it is lifted: on Redis, its memory limit reached with nothing to evict; on RabbitMQ, every queue of
    the run's virtual host full and rejecting what is published to it (the publisher confirm is a nack)."""
    if is_amqp(settings.CELERY_BROKER_URL):
        with _rabbitmq_refusing(settings.CELERY_BROKER_URL):
            yield
        return
    client = redis_client()
    saved = {**client.config_get("maxmemory"), **client.config_get("maxmemory-policy")}
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1)
    try:
        yield
    finally:
        for name, value in saved.items():
            client.config_set(name, value)


@contextmanager
def _rabbitmq_refusing(url: str) -> Iterator[None]:
    set_policy(url, REFUSE_POLICY, '{"max-length": 0, "overflow": "reject-publish"}')
    time.sleep(0.3)  # the queues apply a policy asynchronously
    try:
        yield
    finally:
        clear_policy(url, REFUSE_POLICY)
        time.sleep(0.3)
