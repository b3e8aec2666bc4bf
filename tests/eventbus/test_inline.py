"""Inline listeners (eventbus.bus.inline): run by the publishing process right after its commit, with an
outbox row like any other, falling back to their queue when that run fails, and sent by the relay when
the process died before running them."""

import pytest
from django.db import connection, transaction
from django.utils import timezone

from apps.balance.tasks import use_balance_task
from apps.orders.models import Order, OrderStatus
from apps.orders.process import PENDING, SUCCESS, lock_key, read_steps
from apps.payments.tasks import pay_task
from apps.products.events import StockDeducted
from apps.products.rank import rank_key
from apps.products.tasks import deduct_stock_task
from common.redis import redis_client
from eventbus import publish
from eventbus.models import OutboxMessage
from eventbus.relay import outbox_relay
from tests.eventbus.test_bus import queued_tasks

pytestmark = pytest.mark.django_db(transaction=True)

RECORD = "apps.orders.tasks.record_step_result_task"  # StockDeducted's one listener, inline in the routes
DEDUCT = "apps.products.tasks.deduct_stock_task"


@pytest.fixture
def order_id(make_user, make_product, place_order) -> int:
    """An order whose step tasks wait in the broker (no worker runs here)."""
    user = make_user(balance=50_000)
    order_id = place_order(user, [(make_product(price=10_000, stock=5).pk, 1)])
    redis_client().delete("balance", "products")
    return order_id


def stock_step(order_id: int) -> str:
    return read_steps([order_id])[order_id]["stock"]


def row_of(envelope: dict) -> OutboxMessage:
    return OutboxMessage.objects.get(event_id=envelope["event_id"], listener=RECORD)


def test_an_inline_listener_runs_in_the_publishing_process_after_the_commit_never_before(order_id):
    # when
    with transaction.atomic():
        envelope = publish(StockDeducted(order_id=order_id))

        # then, before the commit: nothing recorded
        assert stock_step(order_id) == PENDING

    # then, after it: recorded by this process, its row handled, no task queued
    assert stock_step(order_id) == SUCCESS
    row = row_of(envelope)
    assert row.handled_at is not None and row.dispatched_at is None and row.dispatch_count == 0
    assert row.started_at is None  # run inline: no start mark
    assert queued_tasks() == {}


def test_an_inline_listener_of_a_rolled_back_transaction_never_runs(order_id):
    # when
    with pytest.raises(RuntimeError), transaction.atomic():
        publish(StockDeducted(order_id=order_id))
        raise RuntimeError("the publishing transaction fails")

    # then
    assert stock_step(order_id) == PENDING
    assert not OutboxMessage.objects.filter(listener=RECORD).exists()
    assert queued_tasks() == {}


def test_an_inline_listener_that_fails_goes_to_its_queue_and_the_publisher_does_not_see_the_failure(order_id, settings):
    # given: another holder keeps the order's lock, so recording here gives up (OrderLockBusy)
    settings.ORDER_LOCK_WAIT_SECONDS = 0.05
    redis_client().set(lock_key(order_id), "someone else", ex=30)

    # when
    with transaction.atomic():
        envelope = publish(StockDeducted(order_id=order_id))

    # then: nothing recorded here; the task waits on the orders queue, its row marked dispatched
    assert stock_step(order_id) == PENDING
    assert queued_tasks() == {"orders": [(RECORD, (envelope,))]}
    row = row_of(envelope)
    assert row.handled_at is None and row.dispatched_at is not None and row.dispatch_count == 1
    # and the row says why, as a retry would
    assert row.failure_count == 1 and row.last_error.startswith("OrderLockBusy")


def test_an_inline_listener_whose_process_died_after_the_commit_is_sent_by_the_relay(order_id, settings):
    # given: the commit happened, but the process died before its on-commit work (the hooks are lost)
    with transaction.atomic():
        envelope = publish(StockDeducted(order_id=order_id))
        connection.run_on_commit.clear()
    assert stock_step(order_id) == PENDING
    settings.OUTBOX_DISPATCH_GRACE_SECONDS = 0

    # when
    assert outbox_relay() == 1

    # then: the relay sent it to the listener's queue, like any row never dispatched
    assert queued_tasks() == {"orders": [(RECORD, (envelope,))]}
    assert row_of(envelope).dispatch_count == 1


def test_with_inline_listeners_turned_off_every_listener_goes_through_its_queue(order_id, settings):
    settings.EVENTBUS_INLINE_LISTENERS = False

    with transaction.atomic():
        envelope = publish(StockDeducted(order_id=order_id))

    assert stock_step(order_id) == PENDING
    assert queued_tasks() == {"orders": [(RECORD, (envelope,))]}


def test_a_listener_task_and_the_inline_listeners_it_ran_are_marked_handled(order_id):
    # when the stock step's task runs, and records its own result inline
    created = OutboxMessage.objects.filter(order_id=order_id, event_type="OrderCreated").first().envelope
    deduct_stock_task.apply(args=(created,))

    # then both rows are handled: the batched task's in its own transaction, the inline listener's once
    # it ran after that commit
    rows = OutboxMessage.objects.filter(order_id=order_id, listener__in=[DEDUCT, RECORD])
    handled = dict(rows.values_list("listener", "handled_at"))
    assert set(handled) == {DEDUCT, RECORD}
    assert None not in handled.values() and handled[DEDUCT] <= handled[RECORD]
    assert stock_step(order_id) == SUCCESS


def envelope_of_row(order_id: int, event_type: str) -> dict:
    return OutboxMessage.objects.filter(order_id=order_id, event_type=event_type).first().envelope


def test_an_inline_listener_failing_inside_a_task_goes_to_its_queue_and_the_task_is_still_handled(order_id, settings):
    # given the order's lock held by someone else, so that the stock step's inline recording gives up
    settings.ORDER_LOCK_WAIT_SECONDS = 0.05
    redis_client().set(lock_key(order_id), "someone else", ex=30)

    # when the stock step's task runs
    deduct_stock_task.apply(args=(envelope_of_row(order_id, "OrderCreated"),)).get()

    # then the step is done and its task's row handled; the recording waits on the orders queue
    rows = {row.listener: row for row in OutboxMessage.objects.filter(order_id=order_id)}
    assert rows["apps.products.tasks.deduct_stock_task"].handled_at is not None
    record = rows[RECORD]
    assert record.handled_at is None and record.dispatch_count == 1 and record.failure_count == 1
    assert queued_tasks() == {"orders": [(RECORD, (record.envelope,))]}
    assert stock_step(order_id) == PENDING


def test_a_nested_inline_listener_that_fails_goes_to_its_queue_and_those_around_it_are_handled(order_id):
    # given an order whose steps succeeded (recorded inline: it waits for its payment), and today's
    # rank key holding something else than a sorted set, so that growing the rank fails in Redis
    created = envelope_of_row(order_id, "OrderCreated")
    use_balance_task.apply(args=(created,)).get()
    deduct_stock_task.apply(args=(created,)).get()
    redis_client().delete("payments")
    redis_client().set(rank_key(timezone.localdate()), "not a sorted set")

    # when the payment's task runs: it completes the order inline, which grows the rank inline
    pay_task.apply(args=(envelope_of_row(order_id, "OrderPaymentWaited"),)).get()

    # then the order is COMPLETED, the payment's and the completion's rows are handled, and the rank's
    # row waits on the products queue with its error, beside the delivery
    assert Order.objects.get(pk=order_id).status == OrderStatus.COMPLETED
    rows = {row.listener: row for row in OutboxMessage.objects.filter(order_id=order_id)}
    assert rows["apps.payments.tasks.pay_task"].handled_at is not None
    assert rows["apps.orders.tasks.complete_order_task"].handled_at is not None
    rank = rows["apps.products.tasks.add_to_rank_task"]
    assert rank.handled_at is None and rank.dispatch_count == 1 and "WRONGTYPE" in rank.last_error
    completed = envelope_of_row(order_id, "OrderCompleted")
    assert queued_tasks() == {
        "products": [("apps.products.tasks.add_to_rank_task", (completed,))],
        "dataplatform": [("apps.dataplatform.tasks.deliver_order_task", (completed,))],
    }
