"""What the orders app tells the other apps about its orders, so that each can check its part of
docs/design.md §5 without reading the orders app's tables (docs/design.md §1).

A plain module: other apps may import it, as they import apps.orders.events.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

# The order statuses the checks speak of, as the orders app stores them (OrderStatus's values).
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CANCELED = "CANCELED"


@dataclass(frozen=True)
class OrderFacts:
    status: str
    total_price: int
    user_coupon_id: int | None
    units: Mapping[int, int] = field(default_factory=dict, hash=False)  # product id → units ordered
    participants: tuple[str, ...] = ()  # the steps that concern the order (common.participants)

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    @property
    def canceled(self) -> bool:
        """Completed, then cancelled by its customer."""
        return self.status == CANCELED

    @property
    def given_back(self) -> bool:
        """FAILED or CANCELED: once its compensations have run, the order holds nothing."""
        return self.status in (FAILED, CANCELED)

    @property
    def settled(self) -> bool:
        return self.status in (COMPLETED, FAILED, CANCELED)


# Every order by id: the argument of each app's `invariants.check`.
Orders = Mapping[int, OrderFacts]
