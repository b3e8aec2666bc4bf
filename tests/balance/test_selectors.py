import pytest

from apps.balance.models import Balance, TransactionKind
from apps.balance.selectors import balance_of, ledger_of
from apps.balance.services import balance_charge, balance_refund, balance_use

pytestmark = pytest.mark.django_db


def test_balance_of_a_user_who_never_charged_is_zero(make_user):
    # given
    user = make_user()

    # then
    assert balance_of(user_id=user.pk) == 0
    assert not Balance.objects.filter(user_id=user.pk).exists()


def test_balance_of_follows_charges_uses_and_refunds(make_user):
    # given
    user = make_user(balance=10_000)

    # when / then
    balance_use(order_id=1, user_id=user.pk, amount=4_000)
    assert balance_of(user_id=user.pk) == 6_000
    balance_refund(order_id=1)
    assert balance_of(user_id=user.pk) == 10_000


def test_ledger_of_lists_only_that_users_rows_oldest_first(make_user):
    # given
    user = make_user()
    other = make_user(balance=777)
    balance_charge(user_id=user.pk, amount=5_000)
    balance_use(order_id=2, user_id=user.pk, amount=1_500)
    balance_refund(order_id=2)

    # when
    rows = [(txn.kind, txn.amount, txn.balance_after, txn.order_id) for txn in ledger_of(user_id=user.pk)]

    # then
    assert rows == [
        (TransactionKind.CHARGE, 5_000, 5_000, None),
        (TransactionKind.USE, 1_500, 3_500, 2),
        (TransactionKind.REFUND, 1_500, 5_000, 2),
    ]
    assert [txn.amount for txn in ledger_of(user_id=other.pk)] == [777]


def test_the_ledger_always_sums_to_the_balance(make_user):
    # given
    user = make_user(balance=9_000)
    balance_use(order_id=3, user_id=user.pk, amount=2_000)
    balance_use(order_id=4, user_id=user.pk, amount=3_000)
    balance_refund(order_id=3)
    balance_use(order_id=5, user_id=user.pk, amount=50_000)  # rejected

    # then
    assert sum(txn.signed_amount for txn in ledger_of(user_id=user.pk)) == balance_of(user_id=user.pk) == 6_000
