"""How many messages wait in a broker queue: what tells the relay a lost message from a backlog.

On the Redis broker a queue is one list per priority step (kombu's Redis transport: the queue's name for
the default priority, the name, a separator and the step for the others), so the depth of every queue is
one pipelined round trip of LLENs. On RabbitMQ, each queue's count of ready messages, from a passive
queue_declare on one short-lived connection (a queue the broker does not have holds nothing). Any other
broker answers None (unknown), and so does a broker that cannot be reached: the relay then waits for such a
row as for a backlog.
"""

from collections.abc import Iterable

import redis
import structlog
from celery import current_app
from kombu import Connection
from kombu.transport.redis import PRIORITY_STEPS, Channel

from common.broker_options import is_amqp
from common.redis import quick_client

logger = structlog.get_logger(__name__)

REDIS_SCHEMES = ("redis://", "rediss://")
# Each of connecting, asking and answering: the relay waits no longer than this for the broker's answer.
AMQP_TIMEOUT_SECONDS = 2.0
NOT_FOUND = 404  # AMQP's reply code to a passive declare of a queue the broker does not have


def waiting_messages(queues: Iterable[str]) -> dict[str, int | None]:
    """The number of messages waiting in each queue (not those a worker holds), or None if unknown."""
    names = sorted(set(queues))
    if names and is_amqp(str(current_app.conf.broker_url)):
        return amqp_waiting_messages(names)
    client = redis_broker()
    if client is None or not names:
        return dict.fromkeys(names)
    lists = [_priority_lists(queue) for queue in names]
    try:
        with client.pipeline(transaction=False) as pipe:
            for name in (each for per_queue in lists for each in per_queue):
                pipe.llen(name)
            lengths = iter(pipe.execute())
    except redis.RedisError as error:
        # The relay then waits for their rows as for a backlog.
        logger.warning("broker_queue_lengths_unread", queues=names, error=str(error))
        return dict.fromkeys(names)
    return {queue: sum(next(lengths) for _ in per_queue) for queue, per_queue in zip(names, lists, strict=True)}


def amqp_waiting_messages(names: list[str]) -> dict[str, int | None]:
    """The ready messages of each RabbitMQ queue (those delivered to a worker, not yet acknowledged, are
    not counted, as on Redis), asked with a passive declare, which creates nothing."""
    depths: dict[str, int | None] = {}
    connection = Connection(
        current_app.conf.broker_url,
        connect_timeout=AMQP_TIMEOUT_SECONDS,
        transport_options={"read_timeout": AMQP_TIMEOUT_SECONDS, "write_timeout": AMQP_TIMEOUT_SECONDS},
    )
    try:
        with connection:
            channel = connection.channel()
            for name in names:
                try:
                    depths[name] = channel.queue_declare(queue=name, passive=True).message_count
                except connection.channel_errors as error:
                    if getattr(error, "code", None) != NOT_FOUND:
                        raise
                    depths[name] = 0  # the broker closes the channel that asked
                    channel = connection.channel()
    except (OSError, *connection.connection_errors, *connection.channel_errors) as error:
        # The relay then waits for their rows as for a backlog.
        logger.warning("broker_queue_lengths_unread", queues=names, error=str(error))
        return dict.fromkeys(names)
    return depths


def _priority_lists(queue: str) -> list[str]:
    options = current_app.conf.broker_transport_options or {}
    prefix = options.get("global_keyprefix", "")
    separator = options.get("sep", Channel.sep)
    steps = options.get("priority_steps", PRIORITY_STEPS)
    return [f"{prefix}{queue}{f'{separator}{step}' if step else ''}" for step in steps]


def redis_broker() -> redis.Redis | None:
    """A quick client on the broker if it is one Redis; None for any other broker."""
    url = current_app.conf.broker_url
    if not isinstance(url, str) or not url.startswith(REDIS_SCHEMES) or ";" in url:  # ";": failover URLs
        return None
    return quick_client(url)
