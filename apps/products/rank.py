"""Daily sales rank: one sorted set per day, `rank:sales:{yyyymmdd}`, member product id, score units sold.

The rank is a read model of what PostgreSQL knows (apps.products.sales): Redis keeps nothing on disk, so
a day it lost is rebuilt from the event history. Beside its sorted set each day keeps

- `rank:sales:{day}:orders`, a hash of the orders counted (order id → its lines, `7:2,8:1`): counting an
  order is "add it here if new, then add its units", in one script, so an order counts once whoever
  counts it (its listener, delivered once or twice, or a rebuild);
- `rank:sales:{day}:canceled`, the orders cancelled after completion: their units are off the day and a
  late count of them is refused;
- `rank:sales:{day}:built`, the mark of a day rebuilt from PostgreSQL. A day without it may have lost
  counts (Redis restarted empty, or the day was never rebuilt): reading the popular list or the
  consistency check rebuilds it.

A rebuild merges PostgreSQL's orders into what the day holds (one script: the union of the counted
orders less the union of the cancelled ones, and the sorted set summed anew from the hash), never
replaces it. An order completed before the rebuild's read is in both, and counts once; one completed
after it is counted by its listener, before or after the merge. Its read must be newer than anything
Redis lost, so the rebuild notes `rank:epoch` (a key without expiry, gone only with Redis's data) before
reading, and the merge refuses to run if it changed since: Redis lost data meanwhile, and it reads again.

Every write sets the TTL of all of a day's keys anew, so they expire together, a day after the last
day whose popular list reads them.
"""

import logging
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from redis.exceptions import LockError

from apps.products.sales import DaySales, sales_on, settled_orders, shop_day, shop_today
from common.redis import redis_client

RANK_DAYS = 3
RANK_SIZE = 5
RANK_KEY_TTL_SECONDS = (RANK_DAYS + 1) * 24 * 3600
EPOCH_KEY = "rank:epoch"
# One rebuild at a time: a burst of readers who find a day lost wait for the first one's rebuild (a few
# queries and one script), then find the day built.
REBUILD_LOCK = "lock:rank:rebuild"
REBUILD_LEASE_SECONDS = 60
REBUILD_WAIT_SECONDS = 5
REBUILD_ATTEMPTS = 3

logger = logging.getLogger(__name__)

# KEYS: the day's sorted set, counted orders, cancelled orders, built mark; ARGV: TTL, order id, lines.
_COUNT = """
if redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 1 or redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3]) == 0 then
  return 0
end
for product, units in string.gmatch(ARGV[3], '(%d+):(%d+)') do
  redis.call('ZINCRBY', KEYS[1], units, product)
end
for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[1]) end
return 1
"""

# Same KEYS; ARGV: TTL, order id. Takes off the units it counted, if it did; refuses any later count.
_UNCOUNT = """
redis.call('SADD', KEYS[3], ARGV[2])
local lines = redis.call('HGET', KEYS[2], ARGV[2])
local removed = 0
if lines then
  redis.call('HDEL', KEYS[2], ARGV[2])
  for product, units in string.gmatch(lines, '(%d+):(%d+)') do
    if tonumber(redis.call('ZINCRBY', KEYS[1], -tonumber(units), product)) <= 0 then
      redis.call('ZREM', KEYS[1], product)
    end
  end
  removed = 1
end
for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[1]) end
return removed
"""

# Same KEYS, then the epoch; ARGV: the epoch read before PostgreSQL, TTL, the number of sold orders, then
# (order id, lines) for each, then the cancelled order ids. Returns the orders counted, or -1 if Redis
# lost data since the epoch was read.
_MERGE = """
if redis.call('GET', KEYS[5]) ~= ARGV[1] then
  return -1
end
local canceled_from = 4 + 2 * tonumber(ARGV[3])
for i = 4, canceled_from - 1, 2 do
  redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1])
end
for i = canceled_from, #ARGV do
  redis.call('SADD', KEYS[3], ARGV[i])
end
for _, order in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  redis.call('HDEL', KEYS[2], order)
end
local totals = {}
local sold = redis.call('HVALS', KEYS[2])
for _, lines in ipairs(sold) do
  for product, units in string.gmatch(lines, '(%d+):(%d+)') do
    totals[product] = (totals[product] or 0) + tonumber(units)
  end
end
redis.call('DEL', KEYS[1])
for product, units in pairs(totals) do
  if units > 0 then
    redis.call('ZADD', KEYS[1], units, product)
  end
end
redis.call('SET', KEYS[4], '1')
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[2]) end
return #sold
"""


class RankNotRebuilt(RuntimeError):
    """Redis kept losing its data while the rank was rebuilt."""


def rank_key(day: date) -> str:
    return f"rank:sales:{day:%Y%m%d}"


def _day_keys(day: date) -> list[str]:
    key = rank_key(day)
    return [key, f"{key}:orders", f"{key}:canceled", f"{key}:built"]


def rank_days(today: date | None = None) -> list[date]:
    """The days the popular list sums: today (the shop's) and the RANK_DAYS - 1 before it."""
    today = today or shop_today()
    return [today - timedelta(days=offset) for offset in range(RANK_DAYS)]


def _packed(lines: Iterable[tuple[int, int]]) -> str:
    """(product id, units) pairs as the day's hash keeps them, `7:2,8:1`, a product's units added up."""
    units: dict[int, int] = defaultdict(int)
    for product_id, quantity in lines:
        units[int(product_id)] += int(quantity)
    return ",".join(f"{product_id}:{quantity}" for product_id, quantity in sorted(units.items()))


def rank_add_order(*, order_id: int, sold_at: datetime, lines: Iterable[tuple[int, int]]) -> bool:
    """Add an order's units to its completion day's rank, once per order. Returns False for a repeat
    (or an order a rebuild counted already), or for an order whose cancellation came first."""
    script = redis_client().register_script(_COUNT)
    return bool(script(keys=_day_keys(shop_day(sold_at)), args=[RANK_KEY_TTL_SECONDS, order_id, _packed(lines)]))


def rank_remove_order(*, order_id: int, sold_at: datetime) -> bool:
    """Take a cancelled order's units off the day they were counted on, once. Returns True if this call
    took them off; False for a repeat, or if they were never counted (a later count is then refused)."""
    script = redis_client().register_script(_UNCOUNT)
    return bool(script(keys=_day_keys(shop_day(sold_at)), args=[RANK_KEY_TTL_SECONDS, order_id]))


def rank_top(*, today: date | None = None) -> list[tuple[int, int]]:
    """[(product_id, units sold)] over the last RANK_DAYS days including today, most sold first: what
    Redis holds (the popular list restores lost days first, apps.products.selectors)."""
    pipe = redis_client().pipeline(transaction=False)
    for day in rank_days(today):
        pipe.zrange(rank_key(day), 0, -1, withscores=True)
    totals: dict[int, int] = {}
    for members in pipe.execute():
        for member, score in members:
            totals[int(member)] = totals.get(int(member), 0) + int(score)
    return sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:RANK_SIZE]


# --- the read model: rebuilt from PostgreSQL, checked against it ------------------------------------------


def rank_rebuild(day: date) -> int:
    """Merge PostgreSQL's sales of the day into its rank (the module's docstring says why the result is
    exact while orders are counted meanwhile), and mark the day built. Returns the orders it counts.

    Its read of PostgreSQL must be newer than its look at the epoch: call it outside a transaction, or
    in one at READ COMMITTED, not in a REPEATABLE READ snapshot taken earlier."""
    counted, _ = _rebuild(day)
    return counted


def _rebuild(day: date) -> tuple[int, DaySales]:
    """rank_rebuild, also returning the sales it merged."""
    merge = redis_client().register_script(_MERGE)
    for _ in range(REBUILD_ATTEMPTS):
        epoch = _epoch()
        sales = sales_on(day)
        sold = [value for order_id, lines in sales.sold.items() for value in (order_id, _packed(lines))]
        args = [epoch, RANK_KEY_TTL_SECONDS, len(sales.sold), *sold, *sorted(sales.canceled)]
        counted = merge(keys=[*_day_keys(day), EPOCH_KEY], args=args)
        if counted >= 0:
            return counted, sales
        logger.warning("Redis lost data while the rank of %s was rebuilt; reading PostgreSQL again", day)
    raise RankNotRebuilt(f"Redis lost data during each of {REBUILD_ATTEMPTS} rebuilds of the rank of {day}")


def _epoch() -> str:
    """The mark of Redis's current data: set by the first rebuild after Redis starts (or is emptied)."""
    pipe = redis_client().pipeline()
    pipe.set(EPOCH_KEY, uuid.uuid4().hex, nx=True)
    pipe.get(EPOCH_KEY)
    return pipe.execute()[1].decode()


def rank_lost_days(today: date | None = None) -> list[date]:
    """The days of the popular list that are not marked built: one round trip."""
    days = rank_days(today)
    pipe = redis_client().pipeline(transaction=False)
    for day in days:
        pipe.exists(_day_keys(day)[3])
    return [day for day, built in zip(days, pipe.execute(), strict=True) if not built]


@dataclass(frozen=True)
class Restored:
    rebuilt: list[date] = field(default_factory=list)
    # Lost days another process was still rebuilding when this call stopped waiting for it.
    still_lost: list[date] = field(default_factory=list)


def rank_restore_lost(*, today: date | None = None) -> Restored:
    """Rebuild the days of the popular list that Redis lost, one process at a time: at most RANK_DAYS
    rebuilds, and none while every day is marked built (one EXISTS each)."""
    lost = rank_lost_days(today)
    if not lost:
        return Restored()
    lock = redis_client().lock(REBUILD_LOCK, timeout=REBUILD_LEASE_SECONDS, blocking_timeout=REBUILD_WAIT_SECONDS)
    if not lock.acquire():
        return Restored(still_lost=lost)
    try:
        lost = rank_lost_days(today)  # the days that the holder this call waited for did not rebuild
        for day in lost:
            counted = rank_rebuild(day)
            logger.warning("The rank of %s was not built; rebuilt from PostgreSQL with %d orders", day, counted)
    finally:
        with suppress(LockError):  # the lease ran out, or Redis lost the lock: the merges are safe anyway
            lock.release()
    return Restored(rebuilt=lost)


def rank_drift(*, today: date | None = None, rebuild_lost: bool = False) -> list[str]:
    """Where the built days of the popular list disagree with PostgreSQL, per product, as readable lines
    ("rank 20261204: product 3 has 5 in Redis, 7 in PostgreSQL"). Exact once no order is in flight (a
    settled run). A day not built is skipped, or with `rebuild_lost` rebuilt first (no order may run:
    without rank_restore_lost's lock); one read of PostgreSQL per day either way."""
    lost = set(rank_lost_days(today))
    found = []
    for day in rank_days(today):
        if day in lost and not rebuild_lost:
            continue
        sales = _rebuild(day)[1] if day in lost else sales_on(day)
        if day in lost:
            logger.warning("The rank of %s was not built; rebuilt from PostgreSQL with %d orders", day, len(sales.sold))
        scores = redis_client().zrange(rank_key(day), 0, -1, withscores=True)
        held = {int(product): int(units) for product, units in scores}
        sold = sales.units()
        for product_id in sorted(held.keys() | sold.keys()):
            if held.get(product_id, 0) != sold.get(product_id, 0):
                found.append(
                    f"rank {day:%Y%m%d}: product {product_id} has {held.get(product_id, 0)} in Redis, "
                    f"{sold.get(product_id, 0)} in PostgreSQL"
                )
    return found


def rank_drift_of_orders(order_ids: Iterable[int], *, today: date | None = None) -> list[str]:
    """Where the built days of the popular list disagree with PostgreSQL about the given orders (those at
    rest, while others run): a completed order not counted, a cancelled one still counted. PostgreSQL may
    be read from a snapshot older than Redis: a completed order that Redis knows as cancelled since is
    not counted, rightly."""
    settled = settled_orders(order_ids)
    built = set(rank_days(today)) - set(rank_lost_days(today))
    named = [(order_id, day, canceled) for order_id, (day, canceled) in sorted(settled.items()) if day in built]
    pipe = redis_client().pipeline(transaction=False)
    for order_id, day, _ in named:
        pipe.hexists(_day_keys(day)[1], order_id)
        pipe.sismember(_day_keys(day)[2], order_id)
    answers = pipe.execute()
    found = []
    for (order_id, day, canceled), counted, canceled_since in zip(named, answers[::2], answers[1::2], strict=True):
        if canceled and counted:
            found.append(f"rank {day:%Y%m%d}: cancelled order {order_id} is still counted")
        elif not canceled and not counted and not canceled_since:
            found.append(f"rank {day:%Y%m%d}: completed order {order_id} is not counted")
    return found


_DAY_OF_LINE = re.compile(r"^rank (\d{8}):")


def days_named(lines: Iterable[str]) -> list[date]:
    """The days the drift lines are about, once each, oldest first."""
    days = {match.group(1) for line in lines if (match := _DAY_OF_LINE.match(line))}
    return [datetime.strptime(day, "%Y%m%d").date() for day in sorted(days)]
