from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.balance.errors import BalanceLimitExceeded
from apps.balance.events import BalanceRefunded, BalanceUsed, BalanceUseFailed
from apps.balance.models import Balance, BalanceStep, BalanceTransaction, TransactionKind
from common.db import locked_values, update_each
from common.errors import ApplicationError, NotFound
from common.steps import StepOutcome, StepRejected, run_compensations, run_steps
from eventbus import publish_all


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
    adding = Balance.objects.filter(user_id=user_id, amount__lte=limit - amount)
    if not adding.update(amount=F("amount") + amount, updated_at=timezone.now()):
        raise BalanceLimitExceeded(f"A balance may not exceed {limit:,} won.")
    return _record(user_id=user_id, kind=TransactionKind.CHARGE, amount=amount).balance_after


@dataclass(frozen=True)
class BalanceUse:
    order_id: int
    user_id: int
    amount: int


INSUFFICIENT_BALANCE = "insufficient balance"


def balance_take(uses: Iterable[BalanceUse]) -> dict[int, str]:
    """The balance step's effect for many orders at once (no step records, no events): each order's
    amount leaves its user's balance, in order of order id, or the order is refused and left untouched.
    Returns the refused orders' reasons."""
    uses = sorted(uses, key=lambda use: use.order_id)
    refused = {use.order_id: "the amount to use must be greater than 0" for use in uses if use.amount <= 0}
    taking = [use for use in uses if use.order_id not in refused]
    balances = _locked_balances(use.user_id for use in taking)
    ledger = []
    for use in taking:
        available = balances.get(use.user_id)
        if available is None or available < use.amount:
            refused[use.order_id] = INSUFFICIENT_BALANCE
            continue
        balances[use.user_id] = after = available - use.amount
        ledger.append(
            BalanceTransaction(
                user_id=use.user_id,
                kind=TransactionKind.USE,
                amount=use.amount,
                order_id=use.order_id,
                balance_after=after,
            )
        )
    _write_ledger(ledger)
    return refused


def _locked_balances(user_ids: Iterable[int]) -> dict[int, int]:
    return locked_values(Balance, key="user_id", field="amount", keys=user_ids)


def _write_ledger(entries: list[BalanceTransaction]) -> list[BalanceTransaction]:
    """Set each user's balance to its last entry's balance_after (one statement) and record the entries
    (one statement). Call with the users' balances locked (_locked_balances)."""
    if not entries:
        return []
    update_each(
        Balance, key="user_id", field="amount", values={entry.user_id: entry.balance_after for entry in entries}
    )
    return BalanceTransaction.objects.bulk_create(entries)


def balance_use_apply(*, user_id: int, order_id: int, amount: int) -> None:
    """The balance step's effect for one order; StepRejected if it cannot be taken."""
    refused = balance_take([BalanceUse(order_id=order_id, user_id=user_id, amount=amount)])
    if refused:
        raise StepRejected(refused[order_id])


@transaction.atomic(savepoint=False)
def balance_use_many(uses: Iterable[BalanceUse]) -> dict[int, StepOutcome]:
    """The balance step for many orders in one transaction: each order's total leaves its user's balance
    once, and each order reports BalanceUsed or BalanceUseFailed on its own. Orders seen before are
    reported repeated and publish nothing: they reported when they were decided, and the outbox delivers
    that report."""
    by_order = {use.order_id: use for use in uses}
    outcomes = run_steps(
        BalanceStep, order_ids=by_order, apply=lambda new: balance_take(by_order[order_id] for order_id in new)
    )
    publish_all(_report(by_order[order_id], outcome) for order_id, outcome in outcomes.items() if not outcome.repeated)
    return outcomes


def _report(use: BalanceUse, outcome: StepOutcome):
    if outcome.succeeded:
        return BalanceUsed(order_id=use.order_id, user_id=use.user_id, amount=use.amount)
    return BalanceUseFailed(order_id=use.order_id, user_id=use.user_id, reason=outcome.reason)


def balance_use(*, order_id: int, user_id: int, amount: int) -> StepOutcome:
    """The balance step for one order: take its total from the user's balance."""
    return balance_use_many([BalanceUse(order_id=order_id, user_id=user_id, amount=amount)])[order_id]


def _refund_all(order_ids: list[int]) -> list[BalanceTransaction]:
    """Give each order back what its USE took, in order of order id."""
    uses = list(
        BalanceTransaction.objects.filter(order_id__in=order_ids, kind=TransactionKind.USE).order_by("order_id")
    )
    missing = set(order_ids) - {use.order_id for use in uses}
    if missing:
        raise LookupError(f"balance steps applied without a USE in the ledger: orders {sorted(missing)}")
    balances = _locked_balances(use.user_id for use in uses)
    refunds = []
    for use in uses:
        balances[use.user_id] = after = balances[use.user_id] + use.amount
        refunds.append(
            BalanceTransaction(
                user_id=use.user_id,
                kind=TransactionKind.REFUND,
                amount=use.amount,
                order_id=use.order_id,
                balance_after=after,
            )
        )
    return _write_ledger(refunds)


@transaction.atomic(savepoint=False)
def balance_refund_many(order_ids: Iterable[int]) -> list[int]:
    """Compensation, for many orders in one transaction: give back what each order's balance step took,
    if it took anything, once per order; each refund reports BalanceRefunded. Returns the orders refunded.

    A refund is owed money, so it is not held to the charge limit."""
    refunds: list[BalanceTransaction] = []
    refunded = run_compensations(
        BalanceStep, order_ids=list(order_ids), undo=lambda applied: refunds.extend(_refund_all(applied))
    )
    publish_all(BalanceRefunded(order_id=r.order_id, user_id=r.user_id, amount=r.amount) for r in refunds)
    return refunded


def balance_refund(*, order_id: int) -> bool:
    """Compensation for one order: give back what its balance step took, if it took anything. Once."""
    return bool(balance_refund_many([order_id]))
