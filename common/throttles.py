"""Limits on what one client may consume (OWASP API4): a rate per user and scope, counted in Redis.

DRF's own throttles keep each client's history in the cache with a read, then a write: concurrent
requests of one client all read the same history and all pass, which is exactly the burst a limit is
for. Here the check and the count are one Lua script (a sliding window on a sorted set, on Redis's own
clock, shared by every API process), so a burst of N requests lets through exactly the rate.
"""

import math
import uuid

import structlog
from django.core.exceptions import ImproperlyConfigured
from redis.exceptions import RedisError
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

from common.redis import redis_client

logger = structlog.get_logger(__name__)

# KEYS[1] the client's window; ARGV: window seconds, limit, a unique member. Returns 0 if the request
# is allowed (and counted), else the seconds until the oldest counted request leaves the window.
_SLIDING_WINDOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local window, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('EXPIRE', KEYS[1], math.ceil(window))
  return '0'
end
local oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
return tostring(oldest + window - now)
"""


def throttle_scope_of(view, method: str) -> str | None:
    """The scope a view limits `method` under: its `throttle_scope`, one scope or {method: scope}."""
    scope = getattr(view, "throttle_scope", None)
    return scope.get(method) if isinstance(scope, dict) else scope


class ScopedRedisRateThrottle(ScopedRateThrottle):
    """A view sets `throttle_scope`, one scope or {method: scope} (a listing and a creation on one path
    are limited apart); the rate comes from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]."""

    cache_format = "throttle:%(scope)s:%(ident)s"

    def allow_request(self, request, view) -> bool:
        self.scope = throttle_scope_of(view, request.method)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.key = self.get_cache_key(request, view)
        try:
            script = redis_client().register_script(_SLIDING_WINDOW)
            answer = script(keys=[self.key], args=[self.duration, self.num_requests, uuid.uuid4().hex])
        except RedisError:
            # A limiter that is down must not take the shop down with it.
            logger.warning("rate_limit_not_checked", scope=self.scope, reason="Redis is unreachable", exc_info=True)
            return True
        self._wait = float(answer)
        return self._wait <= 0

    def get_rate(self) -> str | None:
        """Read at each request (DRF's own class keeps the rates of the moment it was imported)."""
        rates = api_settings.DEFAULT_THROTTLE_RATES
        if self.scope not in rates:
            raise ImproperlyConfigured(f"No rate is set for the throttle scope {self.scope!r}.")
        return rates[self.scope]

    def wait(self) -> float:
        return max(1, math.ceil(self._wait))
