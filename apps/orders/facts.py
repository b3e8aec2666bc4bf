"""What the orders app tells the other apps about its orders, so that each can check its part of
docs/design.md §5 without reading the orders app's tables (docs/design.md §1).

A plain module: other apps may import it, as they import apps.orders.events.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

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
    user_id: int | None = None
    created_at: datetime | None = None
    # Settled, and long enough ago that its compensations have run: what its effects must add up to can
    # be checked. In a settled run every settled order is at rest.
    at_rest: bool = False

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


# Every order by id.
Orders = Mapping[int, OrderFacts]


@dataclass(frozen=True)
class Scope:
    """What one consistency check looks at: the argument of each app's `invariants.check`.

    A settled run (the tests, the chaos run, the benchmark) looks at every row, and every order must be
    settled. The consistency monitor looks, while orders are in flight, at what changed recently: the
    orders of its window and the users, products and coupons they touched, each set below naming them
    (None: every one). An order's own effects are checked once it is `at_rest`; until then, only what
    holds at every commit (a balance equals its ledger) is.
    """

    orders: Orders
    users: frozenset[int] | None = None
    products: frozenset[int] | None = None
    coupons: frozenset[int] | None = None
    # An order still CREATED or PAYMENT_WAITING that was created before this has missed its deadline
    # (§5.5); None in a settled run, where any such order has.
    overdue_before: datetime | None = None

    @property
    def everything(self) -> bool:
        """Every row of every app is in scope, and no order is in flight."""
        return self.overdue_before is None

    def overdue(self, order: OrderFacts) -> bool:
        if order.settled:
            return False
        return self.everything or (order.created_at is not None and order.created_at < self.overdue_before)


def within(queryset, field: str, ids: frozenset[int] | None):
    """`queryset` narrowed to the rows whose `field` is one of `ids`; all of it when `ids` is None."""
    return queryset if ids is None else queryset.filter(**{f"{field}__in": ids})


def of_orders(queryset, orders: Orders, field: str = "order_id"):
    """The rows of `queryset` that belong to `orders`: named in the query while they are few; past that,
    those of every order in their range of ids (a caller looks up its own): orders get serial ids, and a
    scope's are recent ones, so the range holds few others."""
    if len(orders) <= ORDERS_NAMED_AT_MOST:
        return queryset.filter(**{f"{field}__in": list(orders)})
    return queryset.filter(**{f"{field}__range": (min(orders), max(orders))})


def at_rest(orders: Orders) -> dict[int, OrderFacts]:
    """The orders whose own effects can be judged (see OrderFacts.at_rest)."""
    return {order_id: order for order_id, order in orders.items() if order.at_rest}


ORDERS_NAMED_AT_MOST = 5_000
