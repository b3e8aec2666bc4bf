from dataclasses import dataclass
from typing import ClassVar

from eventbus import DomainEvent


@dataclass(frozen=True)
class PointsReserved(DomainEvent):
    source: ClassVar[str] = "loyalty"
    order_id: int
    points: int


@dataclass(frozen=True)
class PointsReserveFailed(DomainEvent):
    source: ClassVar[str] = "loyalty"
    order_id: int
    reason: str


@dataclass(frozen=True)
class PointsEarned(DomainEvent):
    source: ClassVar[str] = "loyalty"
    order_id: int
    points: int


@dataclass(frozen=True)
class PointsGivenBack(DomainEvent):
    source: ClassVar[str] = "loyalty"
    order_id: int
    points: int
