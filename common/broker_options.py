"""The broker's settings, chosen from its URL (README, "Brokers").

On RabbitMQ (`amqp://`) the durability comes from the broker itself: durable queues, persistent messages, and
publisher confirms, so that a publish the broker refuses raises in the sender (the outbox then keeps its row
undispatched, and the relay sends it later) instead of being lost without a word. On Redis, the messages a
dead worker held come back after the visibility timeout, an option only that transport knows.

Quorum queues (replicated, CELERY_BROKER_QUEUE_TYPE=quorum) need RabbitMQ 4.0.1 or later: Celery's delayed
delivery (the countdown of every retry) relies on what earlier servers lack; a worker refuses to start on an
older one (check_server_supports), rather than losing retries.
"""

from typing import Any

from django.core.exceptions import ImproperlyConfigured

AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")
REDIS_SCHEMES = ("redis://", "rediss://")
CLASSIC, QUORUM = "classic", "quorum"
QUEUE_TYPES = (CLASSIC, QUORUM)
QUORUM_SINCE = (4, 0, 1)
# A message a dead worker held comes back after this on Redis; the relay re-sends sooner if it is not handled.
REDIS_VISIBILITY_TIMEOUT_SECONDS = 300


def is_amqp(url: str) -> bool:
    return url.startswith(AMQP_SCHEMES)


def is_redis(url: str) -> bool:
    return url.startswith(REDIS_SCHEMES)


def broker_transport(url: str) -> str | None:
    """On Redis, kombu's transport keeping one client per channel (common/broker.py); other brokers their own."""
    return "common.broker:Transport" if url.startswith("redis://") else None


def broker_transport_options(url: str) -> dict[str, Any]:
    if is_amqp(url):
        return {"confirm_publish": True}
    if is_redis(url):
        return {"visibility_timeout": REDIS_VISIBILITY_TIMEOUT_SECONDS}
    return {}


def checked_queue_type(queue_type: str, url: str) -> str:
    """The setting, refused at start if it names no queue type, or quorum queues on a broker without them."""
    if queue_type not in QUEUE_TYPES:
        raise ImproperlyConfigured(
            f"CELERY_BROKER_QUEUE_TYPE={queue_type!r}: the queue types are {', '.join(QUEUE_TYPES)}"
        )
    if queue_type == QUORUM and not is_amqp(url):
        raise ImproperlyConfigured("CELERY_BROKER_QUEUE_TYPE=quorum needs a RabbitMQ broker (an amqp:// URL)")
    return queue_type


def queue_arguments(queue_type: str) -> dict[str, str]:
    """The arguments every queue is declared with (x-queue-type; Redis ignores them)."""
    return {"x-queue-type": queue_type}


def exchange_type(queue_type: str) -> str:
    """Direct exchanges, or topic ones for quorum queues: Celery's native delayed delivery binds only
    those. (A queue's name has no dot or wildcard: a topic exchange routes it as a direct one would.) The
    broker keeps a queue's and an exchange's type: changing CELERY_BROKER_QUEUE_TYPE needs a new vhost."""
    return "topic" if queue_type == QUORUM else "direct"


def check_server_version(version: str, queue_type: str) -> None:
    """Refuse quorum queues on a RabbitMQ server older than QUORUM_SINCE."""
    if queue_type != QUORUM:
        return
    if _version_tuple(version) < QUORUM_SINCE:
        since = ".".join(map(str, QUORUM_SINCE))
        raise ImproperlyConfigured(
            f"CELERY_BROKER_QUEUE_TYPE=quorum needs RabbitMQ {since} or later (delayed delivery of retries); "
            f"this server is {version}: use classic queues (the default) or upgrade the server"
        )


def check_server_supports(app: Any, queue_type: str) -> None:
    """At a worker's start: ask the broker its version if the queue type depends on it (one connection)."""
    if queue_type != QUORUM:
        return
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=3)
        version = connection.connection.server_properties.get("version", "0")
    check_server_version(version if isinstance(version, str) else version.decode(), queue_type)


def _version_tuple(version: str) -> tuple[int, ...]:
    numbers = []
    for part in version.split("+")[0].split("-")[0].split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)
