"""publish(): each listener's task leaves through the real broker when the publishing transaction commits,
never on rollback, and at once outside a transaction (docs/design.md §3)."""

import base64
import json

import pytest
from django.db import transaction

from apps.payments.events import PaymentFailed
from apps.products.events import StockDeducted, StockRestored
from common.queues import SAGA_GROUPS, queues_of
from common.redis import redis_client
from eventbus import publish
from eventbus.bus import domain_event
from tests.eventbus.samples import an_order_created

pytestmark = pytest.mark.django_db(transaction=True)


def queued_tasks() -> dict[str, list[tuple[str, tuple]]]:
    """The tasks waiting in each app's broker queue (a Redis list, pushed left, popped right), oldest first."""
    queued = {}
    for queue in queues_of(SAGA_GROUPS):
        messages = [json.loads(raw) for raw in reversed(redis_client().lrange(queue, 0, -1))]
        queued[queue] = [
            (message["headers"]["task"], tuple(json.loads(base64.b64decode(message["body"]))[0]))
            for message in messages
        ]
    return {queue: tasks for queue, tasks in queued.items() if tasks}


def test_inside_a_transaction_the_listeners_tasks_leave_only_on_commit():
    # when
    with transaction.atomic():
        envelope = publish(an_order_created())

        # then, before commit
        assert queued_tasks() == {}

    # then, after commit: one task per listener that wants it (no coupon: no coupon task), on its app's
    # queue, carrying the envelope
    assert queued_tasks() == {
        "balance": [("apps.balance.tasks.use_balance_task", (envelope,))],
        "products": [("apps.products.tasks.deduct_stock_task", (envelope,))],
    }


def test_a_rolled_back_transaction_dispatches_nothing():
    # when
    with pytest.raises(RuntimeError), transaction.atomic():
        publish(an_order_created())
        raise RuntimeError("the publishing transaction fails")

    # then
    assert queued_tasks() == {}


def payment_failed(order_id: int) -> PaymentFailed:
    """An event whose one listener (fail_order_task) runs on its queue."""
    return PaymentFailed(order_id=order_id, payment_id=None, reason="declined")


def test_an_event_published_in_a_rolled_back_savepoint_is_not_dispatched_when_the_outer_transaction_commits():
    # when
    with transaction.atomic():
        kept = publish(payment_failed(1))
        with pytest.raises(RuntimeError), transaction.atomic():
            publish(payment_failed(2))
            raise RuntimeError("the inner block fails")

    # then
    assert queued_tasks() == {"orders": [("apps.orders.tasks.fail_order_task", (kept,))]}


def test_outside_a_transaction_the_listeners_tasks_leave_at_once():
    # when
    envelope = publish(payment_failed(42))

    # then
    assert queued_tasks() == {"orders": [("apps.orders.tasks.fail_order_task", (envelope,))]}


def test_an_event_without_listeners_dispatches_nothing_but_is_still_published(published_events):
    # when
    publish(StockRestored(order_id=42))

    # then
    assert published_events == [StockRestored(order_id=42)]
    assert queued_tasks() == {}


def test_a_receiver_gets_the_event_and_its_envelope_synchronously_for_its_sender_only():
    # given
    received = []

    def receiver(sender, event, envelope, **kwargs):
        received.append((sender, event, envelope))

    domain_event.connect(receiver, sender=StockDeducted, weak=False, dispatch_uid="tests.eventbus.receiver")
    try:
        # when
        with transaction.atomic():
            publish(an_order_created())
            envelope = publish(StockDeducted(order_id=42))

            # then, already inside the transaction
            assert received == [(StockDeducted, StockDeducted(order_id=42), envelope)]
    finally:
        domain_event.disconnect(sender=StockDeducted, dispatch_uid="tests.eventbus.receiver")


def test_every_publish_dispatches_its_own_envelope():
    # when
    with transaction.atomic():
        first = publish(payment_failed(1))
        second = publish(payment_failed(1))

    # then
    assert first["event_id"] != second["event_id"]
    assert queued_tasks() == {
        "orders": [
            ("apps.orders.tasks.fail_order_task", (first,)),
            ("apps.orders.tasks.fail_order_task", (second,)),
        ]
    }
