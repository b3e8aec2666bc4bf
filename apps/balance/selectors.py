from django.db.models import QuerySet

from apps.balance.models import Balance, BalanceTransaction


def balance_of(*, user_id: int) -> int:
    """The user's balance; 0 for a user who never charged."""
    return Balance.objects.filter(user_id=user_id).values_list("amount", flat=True).first() or 0


def ledger_of(*, user_id: int) -> QuerySet[BalanceTransaction]:
    return BalanceTransaction.objects.filter(user_id=user_id).order_by("created_at", "id")
