from dataclasses import dataclass
from typing import ClassVar

from eventbus import DomainEvent


@dataclass(frozen=True)
class BalanceUsed(DomainEvent):
    source: ClassVar[str] = "balance"
    order_id: int
    user_id: int
    amount: int


@dataclass(frozen=True)
class BalanceUseFailed(DomainEvent):
    source: ClassVar[str] = "balance"
    order_id: int
    user_id: int
    reason: str


@dataclass(frozen=True)
class BalanceRefunded(DomainEvent):
    source: ClassVar[str] = "balance"
    order_id: int
    user_id: int
    amount: int
