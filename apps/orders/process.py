"""The saga's process state in Redis: a hash per order (docs/design.md §4), one field per participant
(common.participants), and the order's lock."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress

from django.conf import settings
from redis.exceptions import LockError

from common.errors import RetryableError
from common.participants import step_names
from common.redis import redis_client

PENDING, SUCCESS, FAILED = "PENDING", "SUCCESS", "FAILED"


class OrderLockBusy(RetryableError):
    pass


def process_key(order_id: int) -> str:
    return f"order:{order_id}:process"


def lock_key(order_id: int) -> str:
    return f"lock:order:{order_id}"


def _reason_field(step: str) -> str:
    return f"{step}_reason"


def _steps_of(raw: dict[bytes, bytes]) -> tuple[dict[str, str], dict[str, str]]:
    decoded = {key.decode(): value.decode() for key, value in raw.items()}
    steps = {step: decoded.get(step, PENDING) for step in step_names()}
    reasons = {step: decoded[_reason_field(step)] for step in steps if _reason_field(step) in decoded}
    return steps, reasons


def record_step(order_id: int, step: str, *, succeeded: bool, reason: str = "") -> tuple[dict, dict]:
    """Record a step's result (the first report wins: a repeat changes nothing) and return all the
    steps and failure reasons, in one round trip."""
    key = process_key(order_id)
    pipe = redis_client().pipeline(transaction=True)
    pipe.hsetnx(key, step, SUCCESS if succeeded else FAILED)
    if not succeeded:
        pipe.hsetnx(key, _reason_field(step), reason)
    pipe.expire(key, settings.SAGA_PROCESS_TTL_SECONDS)
    pipe.hgetall(key)
    return _steps_of(pipe.execute()[-1])


def read_steps(order_ids: Iterable[int]) -> dict[int, dict[str, str]]:
    order_ids = list(order_ids)
    pipe = redis_client().pipeline(transaction=False)
    for order_id in order_ids:
        pipe.hgetall(process_key(order_id))
    return {order_id: _steps_of(raw)[0] for order_id, raw in zip(order_ids, pipe.execute(), strict=True)}


@contextmanager
def order_lock(order_id: int) -> Iterator[None]:
    """The order's lock: a lease (it expires if its holder dies) with a bounded wait. A caller that
    cannot get it raises OrderLockBusy and is retried. The lease is not trusted for exactly-once: the
    decision is fenced in PostgreSQL as well."""
    lock = redis_client().lock(
        lock_key(order_id),
        timeout=settings.ORDER_LOCK_LEASE_SECONDS,
        blocking_timeout=settings.ORDER_LOCK_WAIT_SECONDS,
        # The lock is held for a few milliseconds; redis-py's default poll of 100 ms would park a worker
        # process for most of that time whenever two results of one order arrive together.
        sleep=settings.ORDER_LOCK_POLL_SECONDS,
    )
    if not lock.acquire():
        raise OrderLockBusy(f"order {order_id} is locked by another step result")
    try:
        yield
    finally:
        # If the lease ran out, someone else may hold the lock now: the database fence decides.
        with suppress(LockError):
            lock.release()
