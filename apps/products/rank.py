"""Daily sales rank: one sorted set per day, `rank:sales:{yyyymmdd}`, member product id, score units sold."""

from collections.abc import Iterable
from datetime import date, datetime, timedelta

from django.utils import timezone

from common.redis import redis_client

RANK_DAYS = 3
RANK_SIZE = 5
RANK_KEY_TTL_SECONDS = (RANK_DAYS + 1) * 24 * 3600
COUNTED_MARKER_TTL_SECONDS = RANK_KEY_TTL_SECONDS

# Counting an order is one atomic script: a marker per order makes a redelivered OrderCompleted a no-op.
# KEYS: the day's rank, the order's "counted" marker; ARGV: marker TTL, rank TTL, then product, units pairs.
_ADD_ORDER = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  for i = 3, #ARGV, 2 do
    redis.call('ZINCRBY', KEYS[1], ARGV[i + 1], ARGV[i])
  end
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# Taking a cancelled order's units off: once (an "uncounted" marker), and only if they were counted. If the
# count has not happened yet (its event is late), the "counted" marker is set as a tombstone, so the late
# count is refused. KEYS: the day's rank, "counted", "uncounted"; ARGV: marker TTL, then product, units.
_REMOVE_ORDER = """
if not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
if redis.call('SET', KEYS[2], 'tombstone', 'NX', 'EX', ARGV[1]) then
  return 0
end
for i = 2, #ARGV, 2 do
  if tonumber(redis.call('ZINCRBY', KEYS[1], -tonumber(ARGV[i + 1]), ARGV[i])) <= 0 then
    redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return 1
"""


def rank_key(day: date) -> str:
    return f"rank:sales:{day:%Y%m%d}"


def _pairs(lines: Iterable[tuple[int, int]]) -> list[int]:
    return [value for product_id, quantity in lines for value in (product_id, quantity)]


def rank_add_order(*, order_id: int, sold_at: datetime, lines: Iterable[tuple[int, int]]) -> bool:
    """Add an order's units to its day's rank, once per order. Returns False for a repeat, or for an
    order whose cancellation came first."""
    day = timezone.localtime(sold_at).date()
    script = redis_client().register_script(_ADD_ORDER)
    keys = [rank_key(day), f"rank:counted:{order_id}"]
    return bool(script(keys=keys, args=[COUNTED_MARKER_TTL_SECONDS, RANK_KEY_TTL_SECONDS, *_pairs(lines)]))


def rank_remove_order(*, order_id: int, sold_at: datetime, lines: Iterable[tuple[int, int]]) -> bool:
    """Take a cancelled order's units off the day they were counted on, once. Returns True if this call
    took them off; False for a repeat, or if they were never counted (a later count is then refused)."""
    day = timezone.localtime(sold_at).date()
    script = redis_client().register_script(_REMOVE_ORDER)
    keys = [rank_key(day), f"rank:counted:{order_id}", f"rank:uncounted:{order_id}"]
    return bool(script(keys=keys, args=[COUNTED_MARKER_TTL_SECONDS, *_pairs(lines)]))


def rank_top(*, today: date | None = None) -> list[tuple[int, int]]:
    """[(product_id, units sold)] over the last RANK_DAYS days including today, most sold first."""
    today = today or timezone.localdate()
    keys = [rank_key(today - timedelta(days=offset)) for offset in range(RANK_DAYS)]
    pipe = redis_client().pipeline(transaction=False)
    for key in keys:
        pipe.zrange(key, 0, -1, withscores=True)
    totals: dict[int, int] = {}
    for members in pipe.execute():
        for member, score in members:
            totals[int(member)] = totals.get(int(member), 0) + int(score)
    return sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:RANK_SIZE]
