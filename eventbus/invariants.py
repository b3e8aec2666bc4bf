"""What the outbox says of an order (every event published about it, per listener), for the evidence of
a broken invariant. The orders app counts its decisions from the outbox itself (apps.orders.invariants);
the event bus has nothing of its own to check, so it has no `check`."""

from eventbus.models import OutboxMessage


def evidence(order_id: int) -> dict[str, list]:
    return {"outbox": list(OutboxMessage.objects.filter(order_id=order_id).order_by("pk").values())}
