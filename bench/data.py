"""The shop the benchmark sells from, created in this process (django.setup() done; the database and
Redis are reset and migrated by chaos.data's functions).

Products and coupons go through the services. Customers are many (3,000 for the coupon rush), so they
are written in bulk: users, API tokens, and for those with money a balance with its CHARGE ledger row,
exactly what balance_charge would write (docs/design.md §5.1 holds)."""

import random
from dataclasses import dataclass
from datetime import timedelta

CATALOG_PRICES = (1_000, 1_500, 2_000, 2_500, 3_000, 3_500, 4_000, 5_000)
PLENTY = 10_000_000  # units that never run out during a run


@dataclass(frozen=True)
class Customer:
    id: int
    token: str


def create_customers(*, count: int, prefix: str, balance: int = 0) -> list[Customer]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from apps.accounts.services import api_keys_issue_bulk
    from apps.balance.models import Balance, BalanceTransaction, TransactionKind

    unusable = make_password(None)
    users = get_user_model().objects.bulk_create(
        get_user_model()(username=f"{prefix}-{number}", password=unusable) for number in range(count)
    )
    keys = api_keys_issue_bulk(users=users)
    if balance:
        Balance.objects.bulk_create(Balance(user=user, amount=balance) for user in users)
        BalanceTransaction.objects.bulk_create(
            BalanceTransaction(user=user, kind=TransactionKind.CHARGE, amount=balance, balance_after=balance)
            for user in users
        )
    return [Customer(id=user.pk, token=key) for user, key in zip(users, keys, strict=True)]


def create_catalog(*, prefix: str) -> list[int]:
    """Products that never run out; returns their ids."""
    from apps.products.services import product_create

    return [
        product_create(name=f"{prefix} product {number}", price=price, stock=PLENTY).pk
        for number, price in enumerate(CATALOG_PRICES)
    ]


def create_product(*, name: str, price: int, stock: int) -> int:
    from apps.products.services import product_create

    return product_create(name=name, price=price, stock=stock).pk


def create_coupon(*, name: str, quantity: int) -> int:
    from django.utils import timezone

    from apps.coupons.services import coupon_create

    return coupon_create(
        name=name, discount_rate="0.1", quantity=quantity, expires_at=timezone.now() + timedelta(days=1)
    ).pk


def random_items(catalog: list[int], rng: random.Random) -> list[dict[str, int]]:
    """The order every phase places: two products of the catalog, one or two units each."""
    return [{"product_id": pk, "quantity": rng.randint(1, 2)} for pk in rng.sample(catalog, k=2)]
