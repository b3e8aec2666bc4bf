from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from eventbus import DomainEvent


@dataclass(frozen=True)
class OrderLine:
    product_id: int
    quantity: int
    unit_price: int


@dataclass(frozen=True)
class OrderCreated(DomainEvent):
    source: ClassVar[str] = "orders"
    order_id: int
    user_id: int
    user_coupon_id: int | None
    items: tuple[OrderLine, ...]
    total_price: int
    discount_price: int
    participants: tuple[str, ...] = ()  # the steps that concern the order (common.participants)


@dataclass(frozen=True)
class OrderPaymentWaited(DomainEvent):
    source: ClassVar[str] = "orders"
    order_id: int
    user_id: int
    total_price: int


@dataclass(frozen=True)
class OrderFailed(DomainEvent):
    source: ClassVar[str] = "orders"
    order_id: int
    user_id: int
    user_coupon_id: int | None
    reason: str
    participants: tuple[str, ...] = ()


@dataclass(frozen=True)
class OrderCompleted(DomainEvent):
    source: ClassVar[str] = "orders"
    order_id: int
    user_id: int
    items: tuple[OrderLine, ...]
    gross_price: int
    discount_price: int
    total_price: int
    user_coupon_id: int | None
    created_at: datetime
    completed_at: datetime
    participants: tuple[str, ...] = ()


@dataclass(frozen=True)
class OrderCompleteFailed(DomainEvent):
    source: ClassVar[str] = "orders"
    order_id: int
    reason: str


@dataclass(frozen=True)
class OrderCanceled(DomainEvent):
    """A completed order cancelled by its customer: every participant gives back what it took."""

    source: ClassVar[str] = "orders"
    order_id: int
    user_id: int
    user_coupon_id: int | None
    items: tuple[OrderLine, ...]
    total_price: int
    completed_at: datetime
    canceled_at: datetime
    reason: str
    participants: tuple[str, ...] = ()
