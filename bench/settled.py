"""After the remote phases: wait until every saga order is decided and its completion sent to the data
platform, then check docs/design.md §5 over every order (§5.4, the decision events, over the saga's
orders only: the monolith's publish none). Read through this process's Django."""

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from chaos.report import UNDECIDED


@dataclass(frozen=True)
class DeliveryState:
    undecided: int  # saga orders not decided yet
    unhandled_outbox: int  # outbox rows neither handled nor parked
    waiting: int  # deliveries PENDING or RETRYING
    dead: int  # deliveries given up on
    sent: int  # deliveries the platform accepted
    undelivered: int  # COMPLETED saga orders whose completion is neither sent nor recorded

    @property
    def settled(self) -> bool:
        return not (self.undecided or self.unhandled_outbox or self.waiting or self.undelivered)


def delivery_state(monolith_users: Iterable[int]) -> DeliveryState:
    from django.db import close_old_connections

    from apps.dataplatform.models import Delivery, DeliveryStatus
    from apps.dataplatform.services import COMPLETED, DONE
    from apps.orders.models import Order, OrderStatus
    from eventbus.models import OutboxMessage

    close_old_connections()
    saga_orders = Order.objects.exclude(user_id__in=list(monolith_users))
    completed = set(saga_orders.filter(status=OrderStatus.COMPLETED).values_list("pk", flat=True))
    delivered = set(Delivery.objects.filter(event_type=COMPLETED, status__in=DONE).values_list("order_id", flat=True))
    statuses = Delivery.objects.values_list("status", flat=True)
    return DeliveryState(
        undecided=saga_orders.filter(status__in=UNDECIDED).count(),
        unhandled_outbox=OutboxMessage.objects.filter(handled_at__isnull=True, parked_at__isnull=True).count(),
        waiting=statuses.filter(status__in=(DeliveryStatus.PENDING, DeliveryStatus.RETRYING)).count(),
        dead=statuses.filter(status=DeliveryStatus.DEAD).count(),
        sent=statuses.filter(status=DeliveryStatus.SENT).count(),
        undelivered=len(completed - delivered),
    )


def wait_delivered(monolith_users: list[int], *, say: Callable[[str], None], give_up_after: float = 120) -> dict:
    """Wait until delivery_state is settled (or give up); its last state, with the seconds it took."""
    started = time.monotonic()
    while not (state := delivery_state(monolith_users)).settled and time.monotonic() - started < give_up_after:
        time.sleep(0.25)
    seconds = round(time.monotonic() - started, 1)
    say(
        f"deliveries: {state.sent} sent, {state.waiting} waiting, {state.dead} dead, {state.undelivered} completed "
        f"orders undelivered ({'settled' if state.settled else 'given up'} after {seconds} s)"
    )
    return {**asdict(state), "settled_after_s": seconds if state.settled else None}


def saga_violations(monolith_users: list[int]) -> list[str]:
    """§5 over every order, §5.4 over the orders not placed by the monolith's customers."""
    from apps.orders.consistency import order_facts, violations
    from apps.orders.facts import Scope
    from apps.orders.invariants import check_decisions
    from apps.orders.models import Order

    monolith_orders = set(Order.objects.filter(user_id__in=monolith_users).values_list("pk", flat=True))
    saga_orders = {pk: facts for pk, facts in order_facts().items() if pk not in monolith_orders}
    return violations(decisions=False) + check_decisions(Scope(orders=saga_orders))
