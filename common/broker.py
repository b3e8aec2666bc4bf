"""kombu's Redis transport, with one redis client per channel and connection pool instead of one per call.

kombu's Redis channel builds a new `redis.Redis` object on its connection pool every time it publishes a
message or acknowledges one (`Channel.conn_or_acquire`). redis-py spends about 110 us of Python building
one, nearly as long as the LPUSH round trip itself, and a task costs at least two (its ack, and each
message its listener sends). A client object is only a handle on the pool and is safe to share between
threads, so the channel keeps one, and builds another only when it has replaced its pool (after a fork or
a lost connection). Selected by `CELERY_BROKER_TRANSPORT` when the broker is Redis (config/settings).
"""

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _shared_client: redis.Redis | None = None
    _shared_client_pool: redis.ConnectionPool | None = None

    @contextmanager
    def conn_or_acquire(self, client: redis.Redis | None = None) -> Iterator[redis.Redis]:
        if client:
            yield client
            return
        pool = self.pool
        if self._shared_client is None or self._shared_client_pool is not pool:
            self._shared_client, self._shared_client_pool = self._create_client(), pool
        yield self._shared_client


class Transport(kombu_redis.Transport):
    Channel = Channel
