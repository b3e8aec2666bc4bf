from django.db.models import QuerySet

from apps.balance.models import Balance, BalanceStep, BalanceTransaction
from common.steps import StepOutcome, recorded_outcome


def balance_of(*, user_id: int) -> int:
    """The user's balance; 0 for a user who never charged."""
    return Balance.objects.filter(user_id=user_id).values_list("amount", flat=True).first() or 0


def ledger_of(*, user_id: int) -> QuerySet[BalanceTransaction]:
    return BalanceTransaction.objects.filter(user_id=user_id).order_by("created_at", "id")


def balance_step_outcome(*, order_id: int) -> StepOutcome | None:
    """For the orders app's recovery: what this app's records say of the order's balance step."""
    return recorded_outcome(BalanceStep, order_id=order_id)
