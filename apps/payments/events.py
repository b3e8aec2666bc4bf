from dataclasses import dataclass
from typing import ClassVar

from eventbus import DomainEvent


@dataclass(frozen=True)
class PaymentPaid(DomainEvent):
    source: ClassVar[str] = "payments"
    order_id: int
    payment_id: int
    amount: int


@dataclass(frozen=True)
class PaymentFailed(DomainEvent):
    source: ClassVar[str] = "payments"
    order_id: int
    payment_id: int | None
    reason: str


@dataclass(frozen=True)
class PaymentCanceled(DomainEvent):
    source: ClassVar[str] = "payments"
    order_id: int
    payment_id: int
    reason: str
