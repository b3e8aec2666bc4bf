import pytest

from apps.orders.events import OrderCreated
from eventbus.models import OutboxMessage


def envelopes_of(event_type: str, order_id: int) -> list[dict]:
    """The wire form of the order's events of one type, from the outbox."""
    rows = OutboxMessage.objects.filter(order_id=order_id, event_type=event_type).order_by("pk")
    unique = {row.envelope["event_id"]: row.envelope for row in rows}
    return list(unique.values())


@pytest.fixture
def order_created_envelope():
    def find(order_id: int) -> dict:
        [envelope] = envelopes_of(OrderCreated.event_type(), order_id)
        return envelope

    return find
