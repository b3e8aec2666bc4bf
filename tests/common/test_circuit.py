"""The circuit breaker (common/circuit.py) on the real Redis: opening after consecutive failures, no call
during the cool-off, one trial call after it, one call per idempotency key at a time, a state every process
shares, calls that still overlap on a threads pool, and failing open when Redis cannot be reached."""

import logging
import socket
import threading
import time
from collections import Counter

import pytest
from celery import Task, shared_task

from common import circuit
from common.circuit import (
    CLOSED,
    DATA_PLATFORM,
    HALF_OPEN,
    OPEN,
    PAYMENT_GATEWAY,
    CallDeferred,
    CallInFlight,
    CircuitBreaker,
    CircuitOpen,
    states,
    wait_for_circuit,
)
from tests.saga_worker import wait_for

RESET = 0.6


class Down(Exception):
    """An outage, as a partner's adapter reports it (unreachable, timed out, 5xx)."""


@pytest.fixture
def breaker(settings) -> CircuitBreaker:
    settings.CIRCUIT_FAILURE_THRESHOLD = 3
    settings.CIRCUIT_RESET_SECONDS = RESET
    settings.PAYMENT_GATEWAY_TIMEOUT_SECONDS = 1
    return PAYMENT_GATEWAY


def attempt(breaker: CircuitBreaker, *, fails: bool = False, key: str | None = None, hold: float = 0.0) -> str:
    """One call through the breaker to a partner that is down (`fails`) or answers, after `hold` seconds:
    "called", or "deferred" if the breaker made no call."""
    called = False
    try:
        with breaker.calling(key=key, outage=Down):
            called = True
            time.sleep(hold)
            if fails:
                raise Down("HTTP 503: down for maintenance")
    except (CallDeferred, Down):
        pass
    return "called" if called else "deferred"


def opened(breaker: CircuitBreaker) -> None:
    for _ in range(3):
        assert attempt(breaker, fails=True) == "called"
    assert breaker.snapshot().state == OPEN


def at_once(count: int, action) -> list:
    """Run `action(index)` on `count` threads released together; their results in index order."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        results[index] = action(index)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return results


def logged(caplog, event: str, *fields: str) -> list[dict]:
    """The lines logged as `event`: their breaker and the given fields."""
    return [
        {name: getattr(record, name) for name in ("breaker", *fields)}
        for record in caplog.records
        if record.getMessage() == event
    ]


def a_closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- closed and open -----------------------------------------------------------------------------------


def test_failures_below_the_threshold_keep_it_closed_and_an_answer_starts_the_count_again(breaker):
    # given two failures in a row
    attempt(breaker, fails=True)
    attempt(breaker, fails=True)
    assert (breaker.snapshot().state, breaker.snapshot().failures) == (CLOSED, 2)

    # when the partner answers (a decline is an answer), then two more failures
    assert attempt(breaker) == "called"
    attempt(breaker, fails=True)
    attempt(breaker, fails=True)

    # then it is still closed: the failures were not consecutive
    snapshot = breaker.snapshot()
    assert (snapshot.state, snapshot.failures) == (CLOSED, 2)
    assert snapshot.last_error == "Down: HTTP 503: down for maintenance"


def test_consecutive_failures_open_it_and_no_call_is_made_during_the_cool_off(breaker):
    # given
    opened(breaker)
    snapshot = breaker.snapshot()
    assert snapshot.failures == 3
    assert snapshot.retry_at.timestamp() - snapshot.opened_at.timestamp() == pytest.approx(RESET, abs=0.01)

    # when calls are wanted during the cool-off
    entered = []
    refusals = []
    for _ in range(20):
        try:
            with breaker.calling(key=None, outage=Down):
                entered.append(1)
        except CircuitOpen as refusal:
            refusals.append(refusal)

    # then none is made; each is told to wait until the cool-off is over (and a little more, spread)
    assert entered == [] and len(refusals) == 20
    assert all(0 < refusal.retry_in <= RESET + 1.0 + RESET / 10 for refusal in refusals)
    assert max(refusal.retry_in for refusal in refusals) > min(refusal.retry_in for refusal in refusals)
    assert "circuit breaker of the payment gateway is open" in str(refusals[0])


def test_the_failure_that_opens_it_makes_its_caller_wait_for_the_cool_off_too(breaker):
    # given two failures
    attempt(breaker, fails=True)
    attempt(breaker, fails=True)

    # when the third fails, then its caller is told to wait for the cool-off, not to back off on its own
    with pytest.raises(CircuitOpen, match="opened on this call") as refusal, breaker.calling(outage=Down):
        raise Down("HTTP 503")
    assert isinstance(refusal.value.__cause__, Down)
    assert RESET <= refusal.value.retry_in <= RESET + 1.0 + RESET / 10


def test_an_error_that_is_no_outage_counts_neither_way(breaker):
    # given two failures
    attempt(breaker, fails=True)
    attempt(breaker, fails=True)

    # when a call fails for a reason of the caller's own (a database error around the call, say)
    with pytest.raises(KeyError), breaker.calling(outage=Down):
        raise KeyError("not the partner's fault")

    # then the count of consecutive failures stands
    assert breaker.snapshot().failures == 2


# --- half-open -----------------------------------------------------------------------------------------


def test_after_the_cool_off_one_trial_call_goes_through_and_its_success_closes_it(breaker, caplog):
    # given an open breaker whose cool-off is over
    opened(breaker)
    time.sleep(RESET + 0.05)
    assert breaker.snapshot().state == HALF_OPEN

    # when eight callers from anywhere want a call at once (the trial takes a while)
    with caplog.at_level(logging.INFO, logger="common.circuit"):
        outcomes = at_once(8, lambda _: attempt(breaker, hold=0.3))

    # then exactly one was made, the trial; its success closed the breaker
    assert Counter(outcomes) == {"called": 1, "deferred": 7}
    assert (breaker.snapshot().state, breaker.snapshot().failures) == (CLOSED, 0)
    assert logged(caplog, "circuit_closed") == [{"breaker": "payment_gateway"}]
    assert attempt(breaker) == "called"


def test_the_others_wait_briefly_while_the_trial_is_under_way(breaker):
    # given a trial under way
    opened(breaker)
    time.sleep(RESET + 0.05)
    trial = threading.Thread(target=attempt, args=(breaker,), kwargs={"hold": 0.5})
    trial.start()
    time.sleep(0.1)

    # when another caller wants a call, then it is told to look again soon, not after a whole cool-off
    with pytest.raises(CircuitOpen, match="trial call is under way") as refusal, breaker.calling(outage=Down):
        pass
    assert refusal.value.retry_in <= 1.5
    assert breaker.snapshot().trial_until is not None
    trial.join()


def test_a_failed_trial_opens_it_again_for_another_cool_off(breaker, caplog):
    # given
    opened(breaker)
    first = breaker.snapshot()
    time.sleep(RESET + 0.05)

    # when the trial fails
    with caplog.at_level(logging.WARNING, logger="common.circuit"):
        assert attempt(breaker, fails=True) == "called"

    # then it is open again, for a cool-off counted from now
    again = breaker.snapshot()
    assert again.state == OPEN and again.opened_at > first.retry_at
    assert again.failures == 4
    assert attempt(breaker) == "deferred"
    [reopened] = logged(caplog, "circuit_reopened", "failures", "error", "cool_off_seconds")
    assert reopened == {
        "breaker": "payment_gateway",
        "failures": 4,
        "error": "Down: HTTP 503: down for maintenance",
        "cool_off_seconds": RESET,
    }


def test_a_trial_that_ends_without_a_verdict_lets_the_next_caller_be_the_trial(breaker):
    # given a half-open breaker
    opened(breaker)
    time.sleep(RESET + 0.05)

    # when the trial's caller fails before it could call (not the partner's fault)
    with pytest.raises(KeyError), breaker.calling(outage=Down):
        raise KeyError("the database went away")

    # then the next caller is the trial at once, and its success closes it
    assert breaker.snapshot().state == HALF_OPEN
    assert attempt(breaker) == "called"
    assert breaker.snapshot().state == CLOSED


# --- the fleet -----------------------------------------------------------------------------------------


def test_every_process_sees_the_same_breaker(breaker):
    # given the breaker opened by this process
    opened(breaker)

    # when another process (its own breaker object, the same name) wants a call
    elsewhere = CircuitBreaker(
        PAYMENT_GATEWAY.name, label="the payment gateway", timeout_setting="PAYMENT_GATEWAY_TIMEOUT_SECONDS"
    )

    # then it is refused too, and the other breakers are untouched
    assert attempt(elsewhere) == "deferred"
    assert states() == {"payment_gateway": OPEN, "data_platform": CLOSED}
    assert attempt(DATA_PLATFORM) == "called"


def test_calls_overlap_on_a_threads_pool(breaker):
    # when ten threads call a partner that takes 0.3 s
    started = time.monotonic()
    outcomes = at_once(10, lambda index: attempt(breaker, key=f"pay:payment-{index}", hold=0.3))

    # then they ran side by side, not one at a time
    assert outcomes == ["called"] * 10
    assert time.monotonic() - started < 1.5


def test_a_run_that_finds_its_call_in_flight_waits_for_it_and_is_told_it_was_answered(breaker):
    # given a call for payment 1 under way
    paying = threading.Thread(target=attempt, args=(breaker,), kwargs={"key": "pay:payment-1", "hold": 0.4})
    paying.start()
    time.sleep(0.1)

    # when another run wants the same call, and another one another payment's
    assert attempt(breaker, key="pay:payment-2") == "called"
    started = time.monotonic()
    with breaker.calling(key="pay:payment-1", outage=Down) as call:
        waited = time.monotonic() - started

        # then the second waited for the first to be answered, and is told so, to read its record again
        assert call.just_answered
        call.skip()
    assert 0.2 < waited < 1.0
    paying.join()


def test_a_call_in_flight_too_long_elsewhere_defers_the_run(breaker, monkeypatch):
    # given a call for payment 1 under way, longer than another run waits for it
    monkeypatch.setattr(circuit, "IN_FLIGHT_WAIT_SECONDS", 0.2)
    paying = threading.Thread(target=attempt, args=(breaker,), kwargs={"key": "pay:payment-1", "hold": 0.6})
    paying.start()
    time.sleep(0.1)

    # when another run wants the same call, then it is deferred, to look again soon
    with pytest.raises(CallInFlight) as refusal, breaker.calling(key="pay:payment-1", outage=Down):
        pass
    assert refusal.value.retry_in <= 1.5
    paying.join()


def test_a_failed_call_leaves_its_key_free_for_the_retry(breaker):
    attempt(breaker, fails=True, key="pay:payment-1")

    with breaker.calling(key="pay:payment-1", outage=Down) as call:
        assert not call.just_answered


# --- operators and Redis --------------------------------------------------------------------------------


def test_an_operator_closes_it_by_hand(breaker, caplog):
    # given
    opened(breaker)

    # when
    with caplog.at_level(logging.WARNING, logger="common.circuit"):
        before = breaker.reset()

    # then
    assert before.state == OPEN and before.failures == 3
    assert breaker.snapshot().state == CLOSED and breaker.snapshot().failures == 0
    assert attempt(breaker) == "called"
    assert logged(caplog, "circuit_closed_by_hand", "was") == [{"breaker": "payment_gateway", "was": OPEN}]


def test_opening_is_logged_with_the_breakers_name(breaker, caplog):
    with caplog.at_level(logging.WARNING, logger="common.circuit"):
        opened(breaker)

    assert logged(caplog, "circuit_opened", "failures", "levelname") == [
        {"breaker": "payment_gateway", "failures": 3, "levelname": "WARNING"}
    ]


def test_a_breaker_whose_redis_cannot_be_reached_lets_every_call_through(settings, caplog):
    # given a breaker whose Redis refuses connections
    settings.CIRCUIT_FAILURE_THRESHOLD = 3
    settings.REDIS_URL = f"redis://127.0.0.1:{a_closed_port()}/0"
    breaker = CircuitBreaker(
        "payment_gateway", label="the payment gateway", timeout_setting="PAYMENT_GATEWAY_TIMEOUT_SECONDS"
    )

    # when the partner fails many times over
    with caplog.at_level(logging.WARNING, logger="common.circuit"):
        outcomes = [attempt(breaker, fails=True, key="pay:payment-1") for _ in range(10)]

    # then every call was made (it fails open), nothing broke, and the outage was logged once
    assert outcomes == ["called"] * 10
    assert logged(caplog, "circuit_redis_unreachable") == [{"breaker": "payment_gateway"}]
    snapshot = breaker.snapshot()
    assert (snapshot.state, snapshot.reachable) == (CLOSED, False)
    assert states() == {"payment_gateway": CLOSED, "data_platform": CLOSED}


# --- waiting in a task ---------------------------------------------------------------------------------

runs: list[tuple[int, bool]] = []


@shared_task(bind=True)
def waits_three_times_task(self: Task, waited: bool = False) -> None:
    """Stands for a listener whose partner's breaker is open for its first three runs."""
    runs.append((self.request.retries, waited))
    if len(runs) <= 3:
        wait_for_circuit(self, CircuitOpen("the partner's breaker is open", retry_in=0.05), waited=True)


def test_a_task_waiting_for_a_breaker_runs_again_without_spending_a_retry(saga_worker):
    # given
    runs.clear()

    # when a task meets an open breaker three times
    waits_three_times_task.delay()

    # then it ran four times, each time told it had waited, and its retries are as they were
    wait_for(lambda: len(runs) == 4, message="four runs")
    assert runs == [(0, False), (0, True), (0, True), (0, True)]
