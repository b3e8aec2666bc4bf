from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.balance.errors import BalanceLimitExceeded
from apps.balance.events import BalanceRefunded, BalanceUsed, BalanceUseFailed
from apps.balance.models import Balance, BalanceStep, BalanceTransaction, TransactionKind
from apps.balance.selectors import balance_of, ledger_of
from apps.balance.services import balance_charge, balance_refund, balance_use
from common.errors import ApplicationError, NotFound
from common.steps import REFUSED_AFTER_COMPENSATION, StepOutcome, StepState
from eventbus.models import OutboxMessage

pytestmark = pytest.mark.django_db

LIMIT = 10_000_000


def ledger(user) -> list[tuple[str, int, int, int | None]]:
    return [(txn.kind, txn.amount, txn.balance_after, txn.order_id) for txn in ledger_of(user_id=user.pk)]


def handed_on(callbacks) -> list[tuple[str, str]]:
    """(listener task, event type) of each listener the on-commit callbacks sent to its queue or ran
    inline, read from the outbox rows they marked dispatched or handled."""
    handed = Q(dispatched_at__isnull=False) | Q(handled_at__isnull=False)
    before = set(OutboxMessage.objects.filter(handed).values_list("pk", flat=True))
    for callback in callbacks:
        callback()
    rows = OutboxMessage.objects.filter(handed).exclude(pk__in=before).order_by("pk")
    return list(rows.values_list("listener", "event_type"))


# --- balance_charge ----------------------------------------------------------------------------


def test_charge_adds_to_the_balance_and_writes_the_ledger_with_the_balance_after(make_user):
    # given
    user = make_user()

    # when
    first = balance_charge(user_id=user.pk, amount=1_000)
    second = balance_charge(user_id=user.pk, amount=2_500)

    # then
    assert (first, second) == (1_000, 3_500)
    assert balance_of(user_id=user.pk) == 3_500
    assert ledger(user) == [(TransactionKind.CHARGE, 1_000, 1_000, None), (TransactionKind.CHARGE, 2_500, 3_500, None)]


@pytest.mark.parametrize("amount", [0, -1])
def test_charge_of_a_non_positive_amount_is_refused_and_changes_nothing(make_user, amount):
    # given
    user = make_user(balance=5_000)

    # when
    with pytest.raises(ApplicationError) as refused:
        balance_charge(user_id=user.pk, amount=amount)

    # then
    assert refused.value.code == "validation_error"
    assert balance_of(user_id=user.pk) == 5_000
    assert ledger(user) == [(TransactionKind.CHARGE, 5_000, 5_000, None)]


def test_charge_up_to_exactly_the_limit_is_allowed(make_user):
    # given
    user = make_user()

    # when
    new_balance = balance_charge(user_id=user.pk, amount=LIMIT)

    # then
    assert new_balance == LIMIT
    assert balance_of(user_id=user.pk) == LIMIT


def test_charge_of_one_more_than_the_limit_is_refused_and_changes_nothing(make_user):
    # given
    user = make_user()

    # when
    with pytest.raises(BalanceLimitExceeded) as refused:
        balance_charge(user_id=user.pk, amount=LIMIT + 1)

    # then
    assert refused.value.code == "balance_limit_exceeded"
    assert balance_of(user_id=user.pk) == 0
    assert not BalanceTransaction.objects.filter(user_id=user.pk).exists()


def test_a_charge_that_would_take_the_balance_past_the_limit_is_refused(make_user):
    # given
    user = make_user(balance=6_000_000)

    # when
    with pytest.raises(BalanceLimitExceeded) as refused:
        balance_charge(user_id=user.pk, amount=4_000_001)

    # then
    assert refused.value.code == "balance_limit_exceeded"
    assert balance_of(user_id=user.pk) == 6_000_000
    assert ledger(user) == [(TransactionKind.CHARGE, 6_000_000, 6_000_000, None)]
    # and the charge that reaches the limit exactly still passes
    assert balance_charge(user_id=user.pk, amount=4_000_000) == LIMIT


def test_charge_for_an_unknown_user_is_not_found():
    # when
    with pytest.raises(NotFound) as refused:
        balance_charge(user_id=987_654_321, amount=1_000)

    # then
    assert refused.value.status_code == 404
    assert refused.value.code == "not_found"
    assert not Balance.objects.filter(user_id=987_654_321).exists()


# --- balance_use -------------------------------------------------------------------------------


def test_use_takes_the_amount_and_publishes_balance_used_once_on_commit(
    make_user, published_events, django_capture_on_commit_callbacks
):
    # given
    user = make_user(balance=10_000)

    # when
    with django_capture_on_commit_callbacks() as callbacks:
        outcome = balance_use(order_id=101, user_id=user.pk, amount=3_000)

    # then
    assert outcome == StepOutcome(succeeded=True)
    assert balance_of(user_id=user.pk) == 7_000
    assert ledger(user)[-1] == (TransactionKind.USE, 3_000, 7_000, 101)
    assert BalanceStep.objects.get(order_id=101).state == StepState.APPLIED
    assert published_events == [BalanceUsed(order_id=101, user_id=user.pk, amount=3_000)]
    assert handed_on(callbacks) == [("apps.orders.tasks.record_step_result_task", "BalanceUsed")]


def test_a_use_rolled_back_with_its_callers_transaction_dispatches_nothing_and_can_run_again(
    make_user, django_capture_on_commit_callbacks
):
    # given
    user = make_user(balance=10_000)

    # when the task's transaction fails after the step
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(RuntimeError), transaction.atomic():
        balance_use(order_id=107, user_id=user.pk, amount=3_000)
        raise RuntimeError("the worker died before commit")

    # then
    assert callbacks == []
    assert balance_of(user_id=user.pk) == 10_000
    assert not BalanceStep.objects.filter(order_id=107).exists()
    assert balance_use(order_id=107, user_id=user.pk, amount=3_000) == StepOutcome(succeeded=True)


def test_use_of_the_whole_balance_leaves_zero(make_user):
    # given
    user = make_user(balance=3_000)

    # when
    outcome = balance_use(order_id=102, user_id=user.pk, amount=3_000)

    # then
    assert outcome.succeeded
    assert balance_of(user_id=user.pk) == 0


def test_use_with_insufficient_balance_is_rejected_and_takes_nothing(make_user, published_events):
    # given
    user = make_user(balance=2_999)

    # when
    outcome = balance_use(order_id=103, user_id=user.pk, amount=3_000)

    # then
    assert outcome == StepOutcome(succeeded=False, reason="insufficient balance")
    assert published_events == [BalanceUseFailed(order_id=103, user_id=user.pk, reason="insufficient balance")]
    assert balance_of(user_id=user.pk) == 2_999
    assert not BalanceTransaction.objects.filter(order_id=103).exists()
    step = BalanceStep.objects.get(order_id=103)
    assert (step.state, step.reason) == (StepState.REJECTED, "insufficient balance")


def test_use_by_a_user_who_never_charged_is_rejected(make_user, published_events):
    # given
    user = make_user()

    # when
    outcome = balance_use(order_id=104, user_id=user.pk, amount=1)

    # then
    assert not outcome.succeeded
    assert [type(event) for event in published_events] == [BalanceUseFailed]
    assert not BalanceTransaction.objects.filter(order_id=104).exists()


def test_a_repeated_use_for_the_same_order_takes_nothing_more_returns_the_same_success_and_publishes_nothing_more(
    make_user, published_events
):
    # given
    user = make_user(balance=10_000)
    balance_use(order_id=105, user_id=user.pk, amount=3_000)

    # when
    repeat = balance_use(order_id=105, user_id=user.pk, amount=3_000)

    # then
    assert repeat == StepOutcome(succeeded=True, repeated=True)
    assert balance_of(user_id=user.pk) == 7_000
    assert BalanceTransaction.objects.filter(order_id=105).count() == 1
    assert published_events == [BalanceUsed(order_id=105, user_id=user.pk, amount=3_000)]


def test_a_repeated_rejected_use_stays_rejected_even_when_money_arrived_in_between(make_user, published_events):
    # given
    user = make_user(balance=1_000)
    balance_use(order_id=106, user_id=user.pk, amount=3_000)
    balance_charge(user_id=user.pk, amount=5_000)

    # when
    repeat = balance_use(order_id=106, user_id=user.pk, amount=3_000)

    # then
    assert repeat == StepOutcome(succeeded=False, reason="insufficient balance", repeated=True)
    assert balance_of(user_id=user.pk) == 6_000
    assert not BalanceTransaction.objects.filter(order_id=106).exists()
    assert published_events == [BalanceUseFailed(order_id=106, user_id=user.pk, reason="insufficient balance")]


# --- balance_refund ----------------------------------------------------------------------------


def test_refund_gives_back_exactly_what_the_use_took_once(make_user, published_events):
    # given
    user = make_user(balance=10_000)
    balance_use(order_id=201, user_id=user.pk, amount=3_000)
    published_events.clear()

    # when
    refunded = balance_refund(order_id=201)

    # then
    assert refunded is True
    assert balance_of(user_id=user.pk) == 10_000
    assert ledger(user)[-1] == (TransactionKind.REFUND, 3_000, 10_000, 201)
    assert published_events == [BalanceRefunded(order_id=201, user_id=user.pk, amount=3_000)]
    assert BalanceStep.objects.get(order_id=201).state == StepState.COMPENSATED


def test_a_second_refund_does_nothing(make_user, published_events):
    # given
    user = make_user(balance=10_000)
    balance_use(order_id=202, user_id=user.pk, amount=3_000)
    balance_refund(order_id=202)
    published_events.clear()

    # when
    refunded_again = balance_refund(order_id=202)

    # then
    assert refunded_again is False
    assert balance_of(user_id=user.pk) == 10_000
    assert BalanceTransaction.objects.filter(order_id=202, kind=TransactionKind.REFUND).count() == 1
    assert published_events == []


def test_a_refund_for_a_rejected_use_does_nothing(make_user, published_events):
    # given
    user = make_user(balance=1_000)
    balance_use(order_id=203, user_id=user.pk, amount=3_000)
    published_events.clear()

    # when
    refunded = balance_refund(order_id=203)

    # then
    assert refunded is False
    assert balance_of(user_id=user.pk) == 1_000
    assert not BalanceTransaction.objects.filter(order_id=203).exists()
    assert published_events == []


def test_a_refund_before_the_use_leaves_a_tombstone_that_refuses_the_late_use(make_user, published_events):
    # given
    user = make_user(balance=10_000)

    # when
    refunded = balance_refund(order_id=204)
    late_use = balance_use(order_id=204, user_id=user.pk, amount=3_000)

    # then
    assert refunded is False
    assert late_use == StepOutcome(succeeded=False, reason=REFUSED_AFTER_COMPENSATION, repeated=True)
    assert balance_of(user_id=user.pk) == 10_000
    assert not BalanceTransaction.objects.filter(order_id=204).exists()
    assert BalanceStep.objects.get(order_id=204).state == StepState.COMPENSATED
    assert published_events == []


def test_a_refund_is_not_held_to_the_charge_limit(make_user):
    # given a user who used 3,000,000 and then charged back up to the limit
    user = make_user(balance=LIMIT)
    balance_use(order_id=205, user_id=user.pk, amount=3_000_000)
    balance_charge(user_id=user.pk, amount=3_000_000)

    # when
    refunded = balance_refund(order_id=205)

    # then
    assert refunded is True
    assert balance_of(user_id=user.pk) == LIMIT + 3_000_000
    assert ledger(user)[-1] == (TransactionKind.REFUND, 3_000_000, LIMIT + 3_000_000, 205)


# --- database constraints ----------------------------------------------------------------------


def test_the_database_refuses_a_negative_balance(make_user):
    # given
    user = make_user(balance=1_000)

    # when / then
    with pytest.raises(IntegrityError), transaction.atomic():
        Balance.objects.filter(user_id=user.pk).update(amount=-1)
    assert balance_of(user_id=user.pk) == 1_000


def test_the_database_refuses_a_second_use_row_for_one_order(make_user):
    # given
    user = make_user(balance=10_000)
    balance_use(order_id=301, user_id=user.pk, amount=1_000)

    # when / then
    with pytest.raises(IntegrityError), transaction.atomic():
        BalanceTransaction.objects.create(
            user_id=user.pk, kind=TransactionKind.USE, amount=1_000, balance_after=8_000, order_id=301
        )


@pytest.mark.django_db
def test_every_change_of_a_balance_moves_its_updated_at(make_user):
    # given a balance last changed a day ago
    user = make_user(balance=10_000)
    a_day_ago = timezone.now() - timedelta(days=1)
    Balance.objects.filter(user_id=user.pk).update(updated_at=a_day_ago)

    # when it is charged, then used, each time the stamp moves
    balance_charge(user_id=user.pk, amount=1_000)
    charged = Balance.objects.get(user_id=user.pk).updated_at
    Balance.objects.filter(user_id=user.pk).update(updated_at=a_day_ago)
    balance_use(order_id=901, user_id=user.pk, amount=1_000)
    used = Balance.objects.get(user_id=user.pk).updated_at

    assert charged > a_day_ago and used > a_day_ago
