"""The coupons' demo data for `manage.py seed_demo` (common/demo.py): one coupon users may take."""

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone

from apps.coupons.services import coupon_create
from common.demo import DemoUser, int_in_range, rate

COUPON_LIFETIME = timedelta(days=30)
RATE_PLACES = 4  # Coupon.discount_rate keeps 4 decimal places


def add_arguments(parser: CommandParser) -> None:
    parser.add_argument("--coupon-rate", default="0.1", help="the coupon's discount rate, 0 to 1 (default 0.1)")
    parser.add_argument("--coupon-quantity", type=int, default=100, help="coupons to issue (default 100)")


def seed(*, options: Mapping[str, Any], tag: str, users: Sequence[DemoUser]) -> dict[str, Any]:
    discount_rate = rate(options["coupon_rate"], name="--coupon-rate", places=RATE_PLACES)
    quantity = int_in_range(options["coupon_quantity"], name="--coupon-quantity", low=0)
    coupon = coupon_create(
        name=f"Demo {tag} coupon",
        discount_rate=discount_rate,
        quantity=quantity,
        expires_at=timezone.now() + COUPON_LIFETIME,
    )
    return {"coupons": [{"id": coupon.pk, "discount_rate": float(coupon.discount_rate), "quantity": coupon.quantity}]}
