"""`python manage.py order_timeline 42`: the admin's order timeline as text, for a terminal or a ticket."""

from django.core.management.base import BaseCommand, CommandError

from apps.orders.models import Order
from apps.orders.timeline import Timeline, order_timeline


class Command(BaseCommand):
    help = "Print what happened to an order, oldest first, to the millisecond (the admin's timeline)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("order_id", type=int)

    def handle(self, *args, order_id: int, **options) -> None:
        order = Order.objects.filter(pk=order_id).first()
        if order is None:
            raise CommandError(f"no order {order_id}")
        self.stdout.write("\n".join(timeline_lines(order_timeline(order))))


def timeline_lines(timeline: Timeline) -> list[str]:
    order = timeline.order
    lines = [f"order {order.pk}: {order.status}" + (f" ({order.failure_reason})" if order.failure_reason else "")]
    for entry in timeline.entries:
        details = f"  [{entry.details}]" if entry.details else ""
        lines.append(f"{entry.at_text}  {entry.what}  ({entry.source}){details}")
    if timeline.process.live or timeline.process.note:
        steps = ", ".join(f"{row.step}: live {row.live or '-'}, record {row.record}" for row in timeline.process.steps)
        lines.append(f"now: {steps}" + (f" ({timeline.process.note})" if timeline.process.note else ""))
    return lines
