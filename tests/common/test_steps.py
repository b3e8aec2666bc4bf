"""run_step / run_confirmation / run_compensation on a concrete step table (apps.balance.models.BalanceStep)."""

import functools
import threading
import time
from collections.abc import Callable

import pytest
from django.db import connection, transaction
from django.db.models import F

from apps.balance.models import Balance, BalanceStep
from apps.balance.selectors import balance_of
from common.steps import (
    REFUSED_AFTER_COMPENSATION,
    StepOutcome,
    StepRejected,
    StepState,
    run_compensation,
    run_confirmation,
    run_step,
)


class Effect:
    """A step's effect on the database (take 100 from a balance) that counts how often it ran."""

    def __init__(self, user_id: int, *, delay: float = 0.0):
        self.user_id = user_id
        self.delay = delay
        self.applied = 0
        self.undone = 0
        self._lock = threading.Lock()

    def apply(self) -> None:
        Balance.objects.filter(user_id=self.user_id).update(amount=F("amount") - 100)
        time.sleep(self.delay)
        with self._lock:
            self.applied += 1

    def undo(self) -> None:
        Balance.objects.filter(user_id=self.user_id).update(amount=F("amount") + 100)
        with self._lock:
            self.undone += 1


def step(order_id: int, apply: Callable[[], None]) -> StepOutcome:
    with transaction.atomic():
        return run_step(BalanceStep, order_id=order_id, apply=apply)


def compensate(order_id: int, undo: Callable[[], None]) -> bool:
    with transaction.atomic():
        return run_compensation(BalanceStep, order_id=order_id, undo=undo)


def confirm(order_id: int, settle: Callable[[], None]) -> bool:
    with transaction.atomic():
        return run_confirmation(BalanceStep, order_id=order_id, confirm=settle)


def compensate_settled(order_id: int, undo: Callable[[], None], undo_confirmed: Callable[[], None]) -> bool:
    with transaction.atomic():
        return run_compensation(BalanceStep, order_id=order_id, undo=undo, undo_confirmed=undo_confirmed)


class Settlement:
    """A confirm's effect (and the undo of a settled step) that counts how often each ran."""

    def __init__(self, *, delay: float = 0.0):
        self.delay = delay
        self.settled = 0
        self.unsettled = 0
        self._lock = threading.Lock()

    def settle(self) -> None:
        time.sleep(self.delay)
        with self._lock:
            self.settled += 1

    def unsettle(self) -> None:
        with self._lock:
            self.unsettled += 1


def refuse() -> None:
    raise StepRejected("refused")


def state_of(order_id: int) -> tuple[str, str]:
    record = BalanceStep.objects.get(order_id=order_id)
    return record.state, record.reason


# --- run_step ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_step_runs_once_and_a_repeat_reports_the_same_success(make_user):
    # given
    user = make_user(balance=1_000)
    effect = Effect(user.pk)

    # when
    first = step(1, effect.apply)
    repeat = step(1, effect.apply)

    # then
    assert first == StepOutcome(succeeded=True, repeated=False)
    assert repeat == StepOutcome(succeeded=True, repeated=True)
    assert effect.applied == 1
    assert balance_of(user_id=user.pk) == 900
    assert state_of(1) == (StepState.APPLIED, "")


@pytest.mark.django_db
def test_steps_of_different_orders_are_independent(make_user):
    # given
    user = make_user(balance=1_000)
    effect = Effect(user.pk)

    # when
    outcomes = [step(order_id, effect.apply) for order_id in (1, 2, 3)]

    # then
    assert all(outcome.succeeded and not outcome.repeated for outcome in outcomes)
    assert balance_of(user_id=user.pk) == 700


@pytest.mark.django_db
def test_a_rejected_step_undoes_its_partial_effect_and_stays_rejected(make_user):
    # given an effect that writes, then refuses
    user = make_user(balance=1_000)
    effect = Effect(user.pk)

    def apply_then_refuse() -> None:
        effect.apply()
        raise StepRejected("no " * 200)

    # when
    first = step(1, apply_then_refuse)
    repeat = step(1, effect.apply)

    # then
    reason = ("no " * 200)[:255]
    assert first == StepOutcome(succeeded=False, reason=reason)
    assert repeat == StepOutcome(succeeded=False, reason=reason, repeated=True)
    assert balance_of(user_id=user.pk) == 1_000
    assert state_of(1) == (StepState.REJECTED, reason)


@pytest.mark.django_db
def test_an_unexpected_error_leaves_no_record_so_a_retry_runs_the_step(make_user):
    # given
    user = make_user(balance=1_000)
    effect = Effect(user.pk)

    def crash() -> None:
        effect.apply()
        raise ConnectionError("the database went away")

    # when
    with pytest.raises(ConnectionError):
        step(1, crash)

    # then
    assert not BalanceStep.objects.filter(order_id=1).exists()
    assert balance_of(user_id=user.pk) == 1_000
    assert step(1, effect.apply) == StepOutcome(succeeded=True)
    assert balance_of(user_id=user.pk) == 900


# --- run_compensation --------------------------------------------------------------------------


@pytest.mark.django_db
def test_compensation_undoes_an_applied_step_once(make_user):
    # given
    user = make_user(balance=1_000)
    effect = Effect(user.pk)
    step(1, effect.apply)

    # when
    first = compensate(1, effect.undo)
    repeat = compensate(1, effect.undo)

    # then
    assert (first, repeat) == (True, False)
    assert effect.undone == 1
    assert balance_of(user_id=user.pk) == 1_000
    assert state_of(1) == (StepState.COMPENSATED, "compensated")
    assert step(1, effect.apply) == StepOutcome(succeeded=False, reason=REFUSED_AFTER_COMPENSATION, repeated=True)
    assert effect.applied == 1


@pytest.mark.django_db
def test_compensation_of_a_rejected_step_undoes_nothing(make_user):
    # given
    user = make_user(balance=1_000)
    effect = Effect(user.pk)
    step(1, refuse)

    # when
    compensated = compensate(1, effect.undo)

    # then
    assert compensated is False
    assert effect.undone == 0
    assert balance_of(user_id=user.pk) == 1_000
    assert state_of(1) == (StepState.REJECTED, "refused")


@pytest.mark.django_db
def test_compensation_before_the_step_leaves_a_tombstone_that_refuses_the_step(make_user):
    # given
    user = make_user(balance=1_000)
    effect = Effect(user.pk)

    # when
    compensated = compensate(1, effect.undo)
    late = step(1, effect.apply)

    # then
    assert compensated is False
    assert effect.undone == 0
    assert late == StepOutcome(succeeded=False, reason=REFUSED_AFTER_COMPENSATION, repeated=True)
    assert effect.applied == 0
    assert balance_of(user_id=user.pk) == 1_000
    assert state_of(1) == (StepState.COMPENSATED, "compensated before the step ran")


# --- run_confirmation --------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_confirm_settles_an_applied_step_once_and_its_outcome_stays_a_success(make_user):
    # given
    effect, settlement = Effect(make_user(balance=1_000).pk), Settlement()
    step(1, effect.apply)

    # when
    first = confirm(1, settlement.settle)
    repeat = confirm(1, settlement.settle)

    # then
    assert (first, repeat) == (True, False)
    assert settlement.settled == 1
    assert state_of(1) == (StepState.CONFIRMED, "confirmed")
    assert step(1, effect.apply) == StepOutcome(succeeded=True, repeated=True)
    assert effect.applied == 1


@pytest.mark.django_db
@pytest.mark.parametrize("before", ["nothing", "rejected", "compensated"])
def test_a_confirm_settles_nothing_the_step_did_not_take(make_user, before):
    # given a step that never ran, was refused, or was undone
    effect, settlement = Effect(make_user(balance=1_000).pk), Settlement()
    if before == "rejected":
        step(1, refuse)
    if before == "compensated":
        step(1, effect.apply)
        compensate(1, effect.undo)

    # when
    confirmed = confirm(1, settlement.settle)

    # then
    assert confirmed is False and settlement.settled == 0
    assert BalanceStep.objects.filter(order_id=1).exists() is (before != "nothing")


@pytest.mark.django_db
def test_the_undo_of_a_settled_step_is_its_own_and_runs_once(make_user):
    # given
    user = make_user(balance=1_000)
    effect, settlement = Effect(user.pk), Settlement()
    step(1, effect.apply)
    confirm(1, settlement.settle)

    # when
    first = compensate_settled(1, effect.undo, settlement.unsettle)
    repeat = compensate_settled(1, effect.undo, settlement.unsettle)

    # then the settled step's own undo ran, once, and not the reservation's
    assert (first, repeat) == (True, False)
    assert (settlement.unsettled, effect.undone) == (1, 0)
    assert state_of(1) == (StepState.COMPENSATED, "compensated")
    assert confirm(1, settlement.settle) is False


@pytest.mark.django_db
def test_a_settled_step_is_never_undone_as_if_it_were_only_applied(make_user):
    # given a settled step, and an undo that does not say how to undo a settlement
    user = make_user(balance=1_000)
    effect, settlement = Effect(user.pk), Settlement()
    step(1, effect.apply)
    confirm(1, settlement.settle)

    # when / then: refused (the compensation task retries, then parks for an operator), and nothing moved
    with pytest.raises(TypeError):
        compensate(1, effect.undo)
    assert effect.undone == 0 and balance_of(user_id=user.pk) == 900
    assert state_of(1) == (StepState.CONFIRMED, "confirmed")


# --- concurrent deliveries ---------------------------------------------------------------------


def run_together(*calls: Callable[[], object]) -> list[object]:
    """Run the calls in threads released at the same moment, each on its own database connection."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int, call: Callable[[], object]) -> None:
        try:
            barrier.wait()
            results[index] = call()
        except BaseException as error:  # surfaced in the test below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index, call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
def test_two_deliveries_of_one_step_at_once_apply_it_once(make_user):
    # given an effect slow enough that the second delivery arrives while the first still holds the record
    user = make_user(balance=1_000)
    effect = Effect(user.pk, delay=0.3)

    # when
    outcomes = run_together(lambda: step(1, effect.apply), lambda: step(1, effect.apply))

    # then
    assert sorted(outcomes, key=lambda outcome: outcome.repeated) == [
        StepOutcome(succeeded=True, repeated=False),
        StepOutcome(succeeded=True, repeated=True),
    ]
    assert effect.applied == 1
    assert balance_of(user_id=user.pk) == 900
    assert state_of(1) == (StepState.APPLIED, "")


@pytest.mark.django_db(transaction=True)
def test_a_step_racing_its_compensation_ends_compensated_with_nothing_taken(make_user):
    # given
    user = make_user(balance=1_000)
    effect = Effect(user.pk, delay=0.1)

    for order_id in range(1, 6):
        # when
        outcome, compensated = run_together(
            functools.partial(step, order_id, effect.apply), functools.partial(compensate, order_id, effect.undo)
        )

        # then either the step ran first and was undone, or the tombstone refused it
        assert compensated is outcome.succeeded
        assert state_of(order_id)[0] == StepState.COMPENSATED
    assert effect.applied == effect.undone
    assert balance_of(user_id=user.pk) == 1_000


@pytest.mark.django_db(transaction=True)
def test_two_deliveries_of_one_confirm_at_once_settle_once(make_user):
    # given
    effect, settlement = Effect(make_user(balance=1_000).pk), Settlement(delay=0.3)
    step(1, effect.apply)

    # when
    results = run_together(lambda: confirm(1, settlement.settle), lambda: confirm(1, settlement.settle))

    # then
    assert sorted(results) == [False, True]
    assert settlement.settled == 1
    assert state_of(1) == (StepState.CONFIRMED, "confirmed")


@pytest.mark.django_db(transaction=True)
def test_a_confirm_racing_the_undo_either_settles_then_is_undone_or_never_settles(make_user):
    # given applied steps, each confirmed and compensated at the same moment (a completed order cancelled
    # at once), several times over
    user = make_user(balance=1_000)
    effect, settlement = Effect(user.pk), Settlement(delay=0.05)
    orders = range(1, 9)
    for order_id in orders:
        step(order_id, effect.apply)

    for order_id in orders:
        unsettled_before = settlement.unsettled

        # when
        confirmed, compensated = run_together(
            functools.partial(confirm, order_id, settlement.settle),
            functools.partial(compensate_settled, order_id, effect.undo, settlement.unsettle),
        )

        # then the undo always wins in the end, and undoes exactly what had happened: the settlement if the
        # confirm came first, the reservation otherwise
        assert compensated is True
        assert settlement.unsettled - unsettled_before == int(confirmed)
        assert state_of(order_id)[0] == StepState.COMPENSATED
    assert settlement.settled == settlement.unsettled
    assert effect.undone + settlement.unsettled == len(orders)
    assert balance_of(user_id=user.pk) == 1_000 - 100 * settlement.unsettled
