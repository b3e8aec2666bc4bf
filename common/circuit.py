"""Circuit breakers around the remote systems: the payment gateway and the data platform (docs/design.md §7).

After CIRCUIT_FAILURE_THRESHOLD consecutive failures of a partner anywhere in the fleet (unreachable, timed
out, 5xx: an outage; never an answer such as a declined payment or a 4xx), its breaker opens: for
CIRCUIT_RESET_SECONDS no call is made, and a task that wants one waits its retry (`wait_for_circuit`)
instead of hammering a system that is down. Then one call goes through as a trial (half-open): its success
closes the breaker, its failure opens it again for another cool-off.

The fleet shares each breaker: one Redis hash, changed only by the Lua scripts below, timed by Redis's own
clock, so no two machines' clocks are compared. The same scripts let one call per idempotency key be in
flight at a time across the fleet (a key held, with a lease, until its caller has recorded the answer, and
marked answered for a moment after): two runs of one task (its retry and the relay's resend) that wake
together when a breaker closes do not both call the partner.

Redis unreachable: the breaker fails open. It protects the partner, not correctness (the partners'
idempotency keys and the database's conditional updates do that), so no call is refused or failed because
Redis could not be asked; each process logs the outage at most every REDIS_DOWN_LOG_SECONDS.

Logged (README, "Logs"), with the breaker's name: circuit_opened and circuit_reopened (WARNING, with the
last error), circuit_closed (INFO), circuit_closed_by_hand (WARNING), circuit_redis_unreachable (WARNING).

Hand-written, not pybreaker: pybreaker holds a per-breaker lock for the whole call (a threads pool's calls
would run one at a time) and its half-open state lets every process make a trial at once (README,
Dependencies).
"""

import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import NoReturn

from celery import Task
from celery.exceptions import Reject, Retry
from django.conf import settings
from redis import Redis
from redis.commands.core import Script
from redis.exceptions import RedisError

from common.errors import RetryableError
from common.redis import quick_client

logger = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"
# A call (a trial, or one idempotency key's) is taken to be over this long after its own timeout, even if its
# caller died without saying how it went; and an answered call's key says so this long (Call.just_answered).
CALL_LEASE_MARGIN_SECONDS = 5.0
REDIS_DOWN_LOG_SECONDS = 30.0
# A call whose key is in flight elsewhere waits this long for it, as for a lock (the other run's answer is
# then read from the record), and is deferred (CallInFlight) if it is still under way.
IN_FLIGHT_WAIT_SECONDS = 2.0
IN_FLIGHT_POLL_SECONDS = 0.02
ExceptionTypes = type[BaseException] | tuple[type[BaseException], ...]


class CallDeferred(RetryableError):
    """The call was not made: the task waits `retry_in` seconds and tries again (`wait_for_circuit`)."""

    def __init__(self, message: str, *, retry_in: float):
        super().__init__(message)
        self.retry_in = retry_in


class CircuitOpen(CallDeferred):
    """The partner's breaker is open, or half-open with its one trial call under way."""


class CallInFlight(CallDeferred):
    """Another run has been making this very call (the same idempotency key) for IN_FLIGHT_WAIT_SECONDS."""


# KEYS: the breaker's hash [, the call's flight key]; ARGV: trial lease (s), flight lease (ms), token.
# Returns {verdict, seconds until it may change, whether the key's last call was answered moments ago}:
# closed or trial (go), open, trial-busy or in-flight (wait).
ADMIT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local trial = false
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until'))
if open_until then
    if now < open_until then return {'open', tostring(open_until - now), '0'} end
    local trial_until = tonumber(redis.call('HGET', KEYS[1], 'trial_until'))
    if trial_until and now < trial_until then return {'trial-busy', tostring(trial_until - now), '0'} end
    trial = true
end
local answered = '0'
if KEYS[2] then
    local holder = redis.call('GET', KEYS[2])
    if holder and holder ~= 'answered' then
        return {'in-flight', tostring(math.max(redis.call('PTTL', KEYS[2]), 0) / 1000), '0'}
    end
    if holder then answered = '1' end
    redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
end
if trial then
    redis.call('HSET', KEYS[1], 'trial_until', tostring(now + tonumber(ARGV[1])))
    return {'trial', '0', answered}
end
return {'closed', '0', answered}
"""

# KEYS: as ADMIT; ARGV: outcome (success, failure or none), was a trial (1/0), threshold, cool-off (s), error,
# token, how long an answered call's key says so (ms). Returns {change (opened, reopened, closed or ''),
# consecutive failures}.
RECORD = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
if KEYS[2] and redis.call('GET', KEYS[2]) == ARGV[6] then
    if ARGV[1] == 'success' then
        redis.call('SET', KEYS[2], 'answered', 'PX', ARGV[7])
    else
        redis.call('DEL', KEYS[2])
    end
end
local outcome, trial = ARGV[1], ARGV[2] == '1'
local open_until = redis.call('HGET', KEYS[1], 'open_until')
if outcome == 'none' then
    if trial and open_until then redis.call('HDEL', KEYS[1], 'trial_until') end
    return {'', 0}
end
if outcome == 'success' then
    if open_until and not trial then return {'', 0} end  -- a call let through before the breaker opened
    redis.call('DEL', KEYS[1])
    if open_until then return {'closed', 0} end
    return {'', 0}
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HSET', KEYS[1], 'last_error', ARGV[5], 'last_failure_at', tostring(now))
if open_until and not trial then return {'', failures} end
if open_until or failures >= tonumber(ARGV[3]) then
    redis.call('HSET', KEYS[1], 'opened_at', tostring(now), 'open_until', tostring(now + tonumber(ARGV[4])))
    redis.call('HDEL', KEYS[1], 'trial_until')
    if open_until then return {'reopened', failures} end
    return {'opened', failures}
end
return {'', failures}
"""


@lru_cache(maxsize=8)
def _script(client: Redis, source: str) -> Script:
    return client.register_script(source)


def _redis() -> Redis:
    """A client that gives up within a second: a Redis that does not answer must not hold up a call."""
    return quick_client(settings.REDIS_URL)


def _moment(value: bytes | None) -> datetime | None:
    return datetime.fromtimestamp(float(value), UTC) if value else None


@dataclass(frozen=True)
class CircuitSnapshot:
    """A breaker as operators see it (admin, /metrics)."""

    name: str
    label: str
    state: str  # closed, open or half-open
    failures: int  # consecutive failures so far (while open: including the trials that failed)
    threshold: int
    opened_at: datetime | None = None
    retry_at: datetime | None = None  # when the cool-off ends and a trial call may go
    trial_until: datetime | None = None  # a trial call is under way until then at the latest
    last_error: str = ""
    last_failure_at: datetime | None = None
    reachable: bool = True  # False: Redis could not be asked, and the breaker lets every call through


@dataclass
class Call:
    """One call let through by a breaker (`CircuitBreaker.calling`).

    `just_answered`: another run's call with the same key was answered moments ago, and that run has
    recorded the answer (its block ends after it): read the record again before calling, and `skip()` if
    the work is done."""

    just_answered: bool = False
    trial: bool = False
    flight_key: str | None = None
    token: str = ""
    tracked: bool = True  # False: Redis could not be asked (fail open), so there is nothing to record
    made: bool = True

    def skip(self) -> None:
        """No call was made in the block after all: tell the breaker nothing."""
        self.made = False


class CircuitBreaker:
    """One remote system's breaker. `calling()` guards each call; `snapshot()` and `reset()` are for operators."""

    def __init__(self, name: str, *, label: str, timeout_setting: str):
        self.name = name
        self.label = label
        self.timeout_setting = timeout_setting  # the call's own timeout: a trial or flight lasts no longer
        # {...}: a Redis Cluster hash tag, so that a breaker's keys share a slot as its scripts need.
        self.key = f"circuit:{{{name}}}"
        self._redis_down_logged_at = 0.0
        self._log_lock = threading.Lock()

    @contextmanager
    def calling(self, *, key: str | None = None, outage: ExceptionTypes) -> Iterator[Call]:
        """Make one call to the partner inside the block, or raise CallDeferred without entering it.

        `key`: the call's idempotency key (with its operation), for one call per key at a time across the
        fleet; the key is held until the block ends, so the block should record the answer too. What the
        block raises decides: `outage` counts as a failure, anything else (a database error around the call)
        as neither; a block that ends normally (an answer, a decline or a refusal among them) as a success.
        A failure that opens the breaker (or a failed trial, which reopens it) comes out as CircuitOpen: its
        task waits for the cool-off like every other, rather than backing off on its own."""
        call = self._admit(key)
        try:
            yield call
        except outage as error:
            failure = f"{type(error).__name__}: {error}"
            if self._record(call, "failure", error=failure) in ("opened", "reopened"):
                cool_off = settings.CIRCUIT_RESET_SECONDS
                raise CircuitOpen(
                    f"the circuit breaker of {self.label} opened on this call ({failure}); "
                    f"next trial in {cool_off:g} s",
                    retry_in=_after_cool_off(cool_off),
                ) from error
            raise
        except BaseException:
            self._record(call, "none")
            raise
        self._record(call, "success" if call.made else "none")

    def snapshot(self) -> CircuitSnapshot:
        threshold = settings.CIRCUIT_FAILURE_THRESHOLD
        try:
            with _redis().pipeline(transaction=False) as pipe:
                clock, fields = pipe.time().hgetall(self.key).execute()
        except RedisError:
            self._redis_unreachable()
            return CircuitSnapshot(self.name, self.label, CLOSED, 0, threshold, reachable=False)
        now = clock[0] + clock[1] / 1_000_000
        open_until = float(fields[b"open_until"]) if b"open_until" in fields else None
        state = CLOSED if open_until is None else OPEN if now < open_until else HALF_OPEN
        trial_until = _moment(fields.get(b"trial_until"))
        return CircuitSnapshot(
            name=self.name,
            label=self.label,
            state=state,
            failures=int(fields.get(b"failures", 0)),
            threshold=threshold,
            opened_at=_moment(fields.get(b"opened_at")),
            retry_at=_moment(fields.get(b"open_until")),
            trial_until=trial_until if trial_until and trial_until.timestamp() > now else None,
            last_error=fields.get(b"last_error", b"").decode(),
            last_failure_at=_moment(fields.get(b"last_failure_at")),
        )

    def reset(self) -> CircuitSnapshot:
        """Close the breaker by hand (an operator who knows the partner is back); returns what it was. Raises
        RedisError if Redis cannot be reached (then the breaker lets every call through anyway)."""
        before = self.snapshot()
        _redis().delete(self.key)
        logger.warning("circuit_closed_by_hand", extra={"breaker": self.name, "was": before.state})
        return before

    def _flight_key(self, key: str) -> str:
        return f"{self.key}:flight:{key}"

    def _lease_seconds(self) -> float:
        return float(getattr(settings, self.timeout_setting)) + CALL_LEASE_MARGIN_SECONDS

    def _admit(self, key: str | None) -> Call:
        token = uuid.uuid4().hex
        keys = [self.key, *([self._flight_key(key)] if key else [])]
        lease = self._lease_seconds()
        waiting_until = time.monotonic() + IN_FLIGHT_WAIT_SECONDS
        try:
            client = _redis()
            while True:
                verdict, seconds, answered = _script(client, ADMIT)(
                    keys=keys, args=[lease, int(lease * 1000), token], client=client
                )
                if verdict != b"in-flight" or time.monotonic() >= waiting_until:
                    break
                time.sleep(IN_FLIGHT_POLL_SECONDS)
        except RedisError:
            self._redis_unreachable()
            return Call(tracked=False)
        verdict, seconds = verdict.decode(), float(seconds)
        if verdict == "open":
            raise CircuitOpen(
                f"the circuit breaker of {self.label} is open; its next trial call in {seconds:.1f} s",
                retry_in=_after_cool_off(seconds),
            )
        if verdict == "trial-busy":
            raise CircuitOpen(
                f"the circuit breaker of {self.label} is half-open and its trial call is under way",
                retry_in=_soon(seconds),
            )
        if verdict == "in-flight":
            raise CallInFlight(f"the call {key} to {self.label} is in flight elsewhere", retry_in=_soon(seconds))
        return Call(
            just_answered=answered == b"1",
            trial=verdict == "trial",
            flight_key=keys[1] if key else None,
            token=token,
        )

    def _record(self, call: Call, outcome: str, error: str = "") -> str:
        """Tell the breaker how the call went; returns the change it made (opened, reopened, closed or "")."""
        if not call.tracked:
            return ""
        keys = [self.key, *([call.flight_key] if call.flight_key else [])]
        args = [
            outcome,
            int(call.trial),
            settings.CIRCUIT_FAILURE_THRESHOLD,
            settings.CIRCUIT_RESET_SECONDS,
            error[:500],
            call.token,
            int(CALL_LEASE_MARGIN_SECONDS * 1000),
        ]
        try:
            client = _redis()
            change, failures = _script(client, RECORD)(keys=keys, args=args, client=client)
        except RedisError:
            self._redis_unreachable()
            return ""
        change = change.decode()
        if change == "opened":
            logger.warning(
                "circuit_opened", extra={"breaker": self.name, "failures": failures, **_opening_fields(error)}
            )
        elif change == "reopened":
            logger.warning(
                "circuit_reopened", extra={"breaker": self.name, "failures": failures, **_opening_fields(error)}
            )
        elif change == "closed":
            logger.info("circuit_closed", extra={"breaker": self.name})  # its trial call succeeded
        return change

    def _redis_unreachable(self) -> None:
        with self._log_lock:
            now = time.monotonic()
            if now - self._redis_down_logged_at < REDIS_DOWN_LOG_SECONDS:
                return
            self._redis_down_logged_at = now
        logger.warning("circuit_redis_unreachable", extra={"breaker": self.name}, exc_info=True)  # calls go through


def _opening_fields(error: str) -> dict:
    """The fields of an opening's log line."""
    return {"error": error, "cool_off_seconds": settings.CIRCUIT_RESET_SECONDS}


def _after_cool_off(seconds: float) -> float:
    """Past the end of the cool-off, spread so that the tasks that waited do not all wake at once."""
    return seconds + random.uniform(0.05, 1.0 + seconds / 10)


def _soon(seconds: float) -> float:
    """A trial or the same call is under way: look again shortly (it usually ends well before its lease)."""
    return min(seconds, 1.0) + random.uniform(0.05, 0.5)


PAYMENT_GATEWAY = CircuitBreaker(
    "payment_gateway", label="the payment gateway", timeout_setting="PAYMENT_GATEWAY_TIMEOUT_SECONDS"
)
DATA_PLATFORM = CircuitBreaker(
    "data_platform", label="the data platform", timeout_setting="DATA_PLATFORM_TIMEOUT_SECONDS"
)
BREAKERS = {breaker.name: breaker for breaker in (PAYMENT_GATEWAY, DATA_PLATFORM)}


def snapshots() -> list[CircuitSnapshot]:
    return [breaker.snapshot() for breaker in BREAKERS.values()]


def states() -> dict[str, str]:
    """{breaker name: closed, open or half-open}, for /metrics. A breaker whose Redis cannot be reached
    reads as closed: it lets every call through (it fails open)."""
    return {snapshot.name: snapshot.state for snapshot in snapshots()}


def wait_for_circuit(task: Task, deferred: CallDeferred, **kwargs) -> NoReturn:
    """Send the task again to run in `deferred.retry_in` seconds, as a retry that is not one of its tries:
    waiting for a partner that is down is no failure of the task, so no outage, however long, uses up its
    retries (or a delivery's attempts) and turns into a lost payment or a dead delivery. `kwargs` are added
    to the retry's.

    The wait never exceeds CELERY_TASK_TIME_LIMIT: a retry marks its outbox row started (eventbus.listeners),
    and the relay sends a started row again only after the longest time limit plus a margin (or at once if
    the worker that started it is gone), so a task waiting in a live worker is not sent a second time beside
    its own retry. If it is, the copy meets the same breaker, and the flight key keeps the two from calling
    the partner at once."""
    countdown = min(deferred.retry_in, settings.CELERY_TASK_TIME_LIMIT)
    request = task.request
    retry_kwargs = {**(request.kwargs or {}), **kwargs}
    if request.called_directly or request.is_eager:
        raise task.retry(kwargs=retry_kwargs, exc=deferred, countdown=countdown)
    retry = task.signature_from_request(request, kwargs=retry_kwargs, countdown=countdown, retries=request.retries)
    try:
        retry.apply_async()
    except Exception as error:  # the broker refused it: as Task.retry does, the relay sends the row again
        raise Reject(error, requeue=False) from error
    raise Retry(exc=deferred, when=countdown, sig=retry)
