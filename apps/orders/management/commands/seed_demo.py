"""`manage.py seed_demo`: a fresh demo data set, printed as one JSON object (docs/api.md, Commands).

Every run tags its objects with a new random run tag, so it can run any number of times against one
database. Everything is created in one transaction: a refused argument or service leaves nothing behind.
"""

import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.services import api_key_issue
from apps.balance.services import balance_charge
from apps.coupons.services import coupon_create
from apps.products.services import product_create
from common.errors import ApplicationError

COUPON_LIFETIME = timedelta(days=30)
RATE_PLACES = Decimal("0.0001")  # Coupon.discount_rate keeps 4 decimal places


@dataclass(frozen=True)
class DemoPlan:
    users: int
    products: int
    stock: int
    price: int
    balance: int
    coupon_rate: Decimal
    coupon_quantity: int

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> "DemoPlan":
        """The plan the options ask for; CommandError for any value the services would refuse."""
        limit = settings.BALANCE_LIMIT
        return cls(
            users=_int_in_range(options["users"], name="--users", low=0),
            products=_int_in_range(options["products"], name="--products", low=0),
            stock=_int_in_range(options["stock"], name="--stock", low=0),
            price=_int_in_range(options["price"], name="--price", low=1),
            balance=_int_in_range(options["balance"], name="--balance", low=0, high=limit),
            coupon_rate=_rate(options["coupon_rate"]),
            coupon_quantity=_int_in_range(options["coupon_quantity"], name="--coupon-quantity", low=0),
        )


def _int_in_range(value: Any, *, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CommandError(f"{name} must be a whole number, not {value!r}.")
    if value < low:
        raise CommandError(f"{name} must be at least {low:,}, not {value:,}.")
    if high is not None and value > high:
        raise CommandError(f"{name} must be at most {high:,}, not {value:,}.")
    return value


def _rate(value: Any) -> Decimal:
    try:
        rate = Decimal(str(value))
    except InvalidOperation:
        raise CommandError(f"--coupon-rate must be a number, not {value!r}.") from None
    if not rate.is_finite() or not Decimal(0) <= rate <= Decimal(1):
        raise CommandError(f"--coupon-rate must be between 0 and 1, not {value}.")
    if rate != rate.quantize(RATE_PLACES):
        raise CommandError(f"--coupon-rate may have at most 4 decimal places, not {value}.")
    return rate


def new_run_tag() -> str:
    """A short random tag that makes this run's names unique."""
    return secrets.token_hex(4)


def _user_with_token(*, username: str) -> dict[str, Any]:
    user = get_user_model().objects.create_user(username=username)
    return {"id": user.pk, "username": user.username, "token": api_key_issue(user=user)}


def _staff_with_token(*, username: str) -> dict[str, Any]:
    """A superuser with a token for the API and a password for /admin/ (the demo is local only)."""
    password = secrets.token_urlsafe(12)
    user = get_user_model().objects.create_superuser(username=username, email="", password=password)
    return {
        "id": user.pk,
        "username": user.username,
        "token": api_key_issue(user=user),
        "password": password,
    }


@transaction.atomic
def seed_demo(plan: DemoPlan, *, tag: str) -> dict[str, Any]:
    """Create the demo data set and describe it in the shape docs/api.md gives for `seed_demo`."""
    staff = _staff_with_token(username=f"demo-{tag}-staff")
    users = []
    for number in range(1, plan.users + 1):
        user = _user_with_token(username=f"demo-{tag}-user{number}")
        if plan.balance:
            balance_charge(user_id=user["id"], amount=plan.balance)
        users.append(user)
    products = []
    for number in range(1, plan.products + 1):
        product = product_create(name=f"Demo {tag} product {number}", price=plan.price, stock=plan.stock)
        products.append({"id": product.pk, "name": product.name, "price": product.price, "stock": plan.stock})
    coupon = coupon_create(
        name=f"Demo {tag} coupon",
        discount_rate=plan.coupon_rate,
        quantity=plan.coupon_quantity,
        expires_at=timezone.now() + COUPON_LIFETIME,
    )
    coupons = [{"id": coupon.pk, "discount_rate": float(coupon.discount_rate), "quantity": coupon.quantity}]
    return {"staff": staff, "users": users, "products": products, "coupons": coupons}


class Command(BaseCommand):
    help = (
        "Create demo users (each with an API token and a charged balance), products and one coupon, plus a "
        "staff user (token and /admin/ password), and print them as one JSON object on stdout."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--users", type=int, default=5, help="how many users (default 5)")
        parser.add_argument("--products", type=int, default=5, help="how many products (default 5)")
        parser.add_argument("--stock", type=int, default=100, help="each product's stock (default 100)")
        parser.add_argument("--price", type=int, default=10_000, help="each product's price in won (default 10000)")
        parser.add_argument(
            "--balance", type=int, default=1_000_000, help="each user's charged balance in won (default 1000000)"
        )
        parser.add_argument("--coupon-rate", default="0.1", help="the coupon's discount rate, 0 to 1 (default 0.1)")
        parser.add_argument("--coupon-quantity", type=int, default=100, help="coupons to issue (default 100)")

    def handle(self, *args: Any, **options: Any) -> None:
        plan = DemoPlan.from_options(options)
        try:
            data = seed_demo(plan, tag=new_run_tag())
        except ApplicationError as error:
            raise CommandError(error.message) from error
        except IntegrityError as error:  # a run tag already taken: astronomically unlikely
            raise CommandError(f"Could not create the demo data, nothing was saved; run it again. ({error})") from error
        self.stdout.write(json.dumps(data))
