"""The balance's demo data for `manage.py seed_demo` (common/demo.py): every demo user's balance charged."""

from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser

from apps.balance.services import balance_charge
from common.demo import DemoUser, int_in_range


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "--balance", type=int, default=1_000_000, help="each user's charged balance in won (default 1000000)"
    )


def seed(*, options: Mapping[str, Any], tag: str, users: Sequence[DemoUser]) -> dict[str, Any]:
    amount = int_in_range(options["balance"], name="--balance", low=0, high=settings.BALANCE_LIMIT)
    if amount:  # a charge of 0 is refused by the service; 0 means "leave the balances empty"
        for user in users:
            balance_charge(user_id=user.id, amount=amount)
    return {}  # the balances show through the API, not in the printed JSON
