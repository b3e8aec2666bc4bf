"""A fresh database and Redis db for the run, and the shop it sells from: users, products, a coupon.

Created in this process through the services (django.setup() against the run's database), before any
other process of the run starts.
"""

import random
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import psycopg
import redis
from psycopg import sql

from chaos.environment import RunEnvironment

RICH_BALANCE = 5_000_000
POOR_BALANCE = 20_000
PLENTY = 100_000  # stock that never runs out
PRICES = (3_000, 5_000, 8_000, 9_000, 12_000, 15_000, 20_000, 25_000)
SCARCE_STOCK = (6, 10)  # the last products: orders that take them are often doomed by stock
COUPON_RATE = Decimal("0.1")


@dataclass(frozen=True)
class ShopUser:
    id: int
    token: str
    poor: bool


@dataclass(frozen=True)
class Shop:
    users: list[ShopUser]
    plentiful: list[int]  # product ids
    scarce: list[int]
    coupon_id: int


def reset_database(db_name: str) -> None:
    with psycopg.connect(RunEnvironment.maintenance_url("chaos-reset"), autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db_name)))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))


def reset_redis(redis_url: str) -> None:
    redis.Redis.from_url(redis_url).flushdb()


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def create_shop(*, users: int, poor_share: float, rng: random.Random) -> Shop:
    """Users with tokens and balances (a share of them poor), products (two scarce) and one coupon
    with a unit for each user."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from apps.accounts.services import api_key_issue
    from apps.balance.services import balance_charge
    from apps.coupons.services import coupon_create
    from apps.products.services import product_create

    poor = set(rng.sample(range(users), k=round(users * poor_share)))
    shop_users = []
    for number in range(users):
        user = get_user_model().objects.create_user(username=f"chaos-user{number}")
        balance_charge(user_id=user.pk, amount=POOR_BALANCE if number in poor else RICH_BALANCE)
        shop_users.append(ShopUser(id=user.pk, token=api_key_issue(user=user), poor=number in poor))
    products = []
    for number, price in enumerate(PRICES):
        scarce = number >= len(PRICES) - len(SCARCE_STOCK)
        stock = SCARCE_STOCK[number - (len(PRICES) - len(SCARCE_STOCK))] if scarce else PLENTY
        products.append(product_create(name=f"Chaos product {number}", price=price, stock=stock).pk)
    coupon = coupon_create(
        name="Chaos coupon", discount_rate=COUPON_RATE, quantity=users, expires_at=timezone.now() + timedelta(days=1)
    )
    split = len(PRICES) - len(SCARCE_STOCK)
    return Shop(users=shop_users, plentiful=products[:split], scarce=products[split:], coupon_id=coupon.pk)
