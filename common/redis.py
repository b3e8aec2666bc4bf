from django_redis import get_redis_connection
from redis import Redis


def redis_client() -> Redis:
    """The shared Redis client (django-redis keeps one connection pool per process)."""
    return get_redis_connection("default")
