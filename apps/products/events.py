from dataclasses import dataclass
from typing import ClassVar

from eventbus import DomainEvent


@dataclass(frozen=True)
class StockDeducted(DomainEvent):
    source: ClassVar[str] = "products"
    order_id: int


@dataclass(frozen=True)
class StockDeductFailed(DomainEvent):
    source: ClassVar[str] = "products"
    order_id: int
    reason: str


@dataclass(frozen=True)
class StockRestored(DomainEvent):
    source: ClassVar[str] = "products"
    order_id: int
