from functools import lru_cache

from django_redis import get_redis_connection
from redis import Redis

QUICK_TIMEOUT_SECONDS = 1.0


def redis_client() -> Redis:
    """The shared Redis client (django-redis keeps one connection pool per process)."""
    return get_redis_connection("default")


@lru_cache(maxsize=4)
def quick_client(url: str) -> Redis:
    """A client for `url` that gives up within QUICK_TIMEOUT_SECONDS: for those that must not hang on a
    Redis that does not answer (the relay reading queue depths, the readiness probe)."""
    return Redis.from_url(url, socket_timeout=QUICK_TIMEOUT_SECONDS, socket_connect_timeout=QUICK_TIMEOUT_SECONDS)
