from dataclasses import dataclass
from typing import ClassVar

from eventbus import DomainEvent


@dataclass(frozen=True)
class CouponUsed(DomainEvent):
    source: ClassVar[str] = "coupons"
    order_id: int
    user_coupon_id: int


@dataclass(frozen=True)
class CouponUseFailed(DomainEvent):
    source: ClassVar[str] = "coupons"
    order_id: int
    user_coupon_id: int
    reason: str


@dataclass(frozen=True)
class CouponRestored(DomainEvent):
    source: ClassVar[str] = "coupons"
    order_id: int
    user_coupon_id: int
