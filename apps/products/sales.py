"""What PostgreSQL knows of a day's sales: the truth the daily rank (apps.products.rank) is a read model of.

The orders are the orders app's, so the products app reads them from the event history
(eventbus.models.EventRecord), written in the transaction that completes or cancels an order: an
OrderCompleted sells its units on its completion's day (the shop's day, TIME_ZONE), and an OrderCanceled,
which carries the same completion time, takes them back. The history keeps EVENT_HISTORY_RETENTION_DAYS,
far longer than the rank's days.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import DateTimeField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.utils import timezone

from apps.orders.events import OrderCanceled, OrderCompleted
from eventbus.models import EventRecord

COMPLETED, CANCELED = OrderCompleted.event_type(), OrderCanceled.event_type()

Lines = tuple[tuple[int, int], ...]  # (product id, units) of one order


def shop_day(moment: datetime) -> date:
    """The shop's day of a moment: the day whose rank an order completed then counts on."""
    return timezone.localtime(moment, timezone.get_default_timezone()).date()


def shop_today() -> date:
    return shop_day(timezone.now())


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The day's first moment and the next day's, in the shop's time zone."""
    zone = timezone.get_default_timezone()
    start = datetime.combine(day, time.min, tzinfo=zone)
    return start, datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)


@dataclass(frozen=True)
class DaySales:
    """The orders completed on one day: those still sold, with their lines, and those cancelled since."""

    sold: Mapping[int, Lines] = field(default_factory=dict)
    canceled: frozenset[int] = frozenset()

    def units(self) -> dict[int, int]:
        """Units sold per product."""
        totals: dict[int, int] = defaultdict(int)
        for lines in self.sold.values():
            for product_id, units in lines:
                totals[product_id] += units
        return dict(totals)


def sales_on(day: date) -> DaySales:
    """The day's sales as the event history tells them: one query."""
    start, end = day_bounds(day)
    # An event is written after the completion it reports (the same transaction, a moment later): the
    # indexed lower bound holds for both kinds; a cancellation may come any day after.
    rows = (
        EventRecord.objects.filter(event_type__in=(COMPLETED, CANCELED), occurred_at__gte=start)
        .annotate(completed_at=Cast(KT("data__completed_at"), DateTimeField()))
        .filter(completed_at__gte=start, completed_at__lt=end)
        .values_list("event_type", "order_id", "data__items")
    )
    completed: dict[int, Lines] = {}
    canceled = set()
    for event_type, order_id, items in rows:
        if event_type == CANCELED:
            canceled.add(order_id)
        else:
            completed[order_id] = lines_of(items)
    sold = {order_id: lines for order_id, lines in completed.items() if order_id not in canceled}
    return DaySales(sold=sold, canceled=frozenset(canceled))


def settled_orders(order_ids: Iterable[int]) -> dict[int, tuple[date, bool]]:
    """The given orders that completed, by id: (the day they sold on, whether they were cancelled since)."""
    rows = EventRecord.objects.filter(event_type__in=(COMPLETED, CANCELED), order_id__in=list(order_ids)).values_list(
        "event_type", "order_id", "data__completed_at"
    )
    found: dict[int, tuple[date, bool]] = {}
    for event_type, order_id, completed_at in rows:
        day = shop_day(datetime.fromisoformat(completed_at.replace("Z", "+00:00")))
        found[order_id] = (day, found.get(order_id, (day, False))[1] or event_type == CANCELED)
    return found


def lines_of(items: Iterable[Mapping]) -> Lines:
    """An event's items (OrderLine as JSON) as (product id, units), a product's lines added up."""
    units: dict[int, int] = defaultdict(int)
    for item in items:
        units[int(item["product_id"])] += int(item["quantity"])
    return tuple(sorted(units.items()))
