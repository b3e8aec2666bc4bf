from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F

from apps.balance.errors import BalanceLimitExceeded
from apps.balance.events import BalanceRefunded, BalanceUsed, BalanceUseFailed
from apps.balance.models import Balance, BalanceStep, BalanceTransaction, TransactionKind
from common.errors import ApplicationError, NotFound
from common.steps import StepOutcome, StepRejected, run_compensation, run_step
from eventbus import publish


def _record(*, user_id: int, kind: str, amount: int, order_id: int | None = None) -> BalanceTransaction:
    balance_after = Balance.objects.values_list("amount", flat=True).get(user_id=user_id)
    return BalanceTransaction.objects.create(
        user_id=user_id, kind=kind, amount=amount, order_id=order_id, balance_after=balance_after
    )


@transaction.atomic
def balance_charge(*, user_id: int, amount: int) -> int:
    """Add money to a user's balance; returns the new balance. The balance may not exceed the limit."""
    limit = settings.BALANCE_LIMIT
    if amount <= 0:
        raise ApplicationError("The amount to charge must be greater than 0.", code="validation_error")
    if amount > limit:
        raise BalanceLimitExceeded(f"A balance may not exceed {limit:,} won.")
    if not get_user_model().objects.filter(pk=user_id).exists():
        raise NotFound(f"User {user_id} does not exist.")
    Balance.objects.get_or_create(user_id=user_id)
    # The limit is checked in the statement that adds, so concurrent charges cannot pass it together.
    if not Balance.objects.filter(user_id=user_id, amount__lte=limit - amount).update(amount=F("amount") + amount):
        raise BalanceLimitExceeded(f"A balance may not exceed {limit:,} won.")
    return _record(user_id=user_id, kind=TransactionKind.CHARGE, amount=amount).balance_after


def balance_use_apply(*, user_id: int, order_id: int, amount: int) -> None:
    """The balance step's effect alone (no step record, no event); StepRejected if it cannot be taken."""
    if amount <= 0:
        raise StepRejected("the amount to use must be greater than 0")
    if not Balance.objects.filter(user_id=user_id, amount__gte=amount).update(amount=F("amount") - amount):
        raise StepRejected("insufficient balance")
    _record(user_id=user_id, kind=TransactionKind.USE, amount=amount, order_id=order_id)


@transaction.atomic
def balance_use(*, order_id: int, user_id: int, amount: int) -> StepOutcome:
    """The balance step: take the order's total from the user's balance. Reports BalanceUsed or
    BalanceUseFailed."""
    outcome = run_step(
        BalanceStep,
        order_id=order_id,
        apply=lambda: balance_use_apply(user_id=user_id, order_id=order_id, amount=amount),
    )
    if outcome.repeated:
        return outcome  # reported when it was decided; the outbox delivers that report
    if outcome.succeeded:
        publish(BalanceUsed(order_id=order_id, user_id=user_id, amount=amount))
    else:
        publish(BalanceUseFailed(order_id=order_id, user_id=user_id, reason=outcome.reason))
    return outcome


def _refund(order_id: int) -> BalanceTransaction:
    use = BalanceTransaction.objects.get(order_id=order_id, kind=TransactionKind.USE)
    Balance.objects.filter(user_id=use.user_id).update(amount=F("amount") + use.amount)
    return _record(user_id=use.user_id, kind=TransactionKind.REFUND, amount=use.amount, order_id=order_id)


@transaction.atomic
def balance_refund(*, order_id: int) -> bool:
    """Compensation: give back what this order's balance step took, if it took anything. Once.

    A refund is owed money, so it is not held to the charge limit."""
    refunds: list[BalanceTransaction] = []
    refunded = run_compensation(BalanceStep, order_id=order_id, undo=lambda: refunds.append(_refund(order_id)))
    if refunded:
        refund = refunds[0]
        publish(BalanceRefunded(order_id=order_id, user_id=refund.user_id, amount=refund.amount))
    return refunded
