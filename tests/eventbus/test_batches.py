"""Batched listeners (eventbus.listeners, docs/design.md §8): a run taken from the broker also claims the
listener's rows no worker has started and handles them in one transaction, each order on its own; the
deliveries of the rows it handled run nothing; a failed batch gives its claims back."""

from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.balance.models import BalanceStep, BalanceTransaction, TransactionKind
from apps.balance.selectors import balance_of
from apps.balance.services import BalanceUse, balance_use_many
from apps.balance.tasks import refund_balance_task, use_balance_task
from apps.orders.services import OrderLineInput, order_create, order_fail
from apps.orders.services.saga import UNDECIDED
from apps.products import services as product_services
from apps.products.models import Stock, StockMovement, StockStep
from apps.products.tasks import deduct_stock_task
from common.steps import StepState
from eventbus.models import EventRecord, OutboxMessage
from tests.concurrency.conftest import orders_with_tasks_purged, purge_tasks
from tests.eventbus.test_bus import queued_tasks

pytestmark = pytest.mark.django_db(transaction=True)

PRICE = 10_000
USE = "apps.balance.tasks.use_balance_task"
DEDUCT = "apps.products.tasks.deduct_stock_task"
REFUND = "apps.balance.tasks.refund_balance_task"


def created(order_id: int) -> dict:
    return OutboxMessage.objects.get(order_id=order_id, event_type="OrderCreated", listener=USE).envelope


def rows(listener: str, orders) -> dict[int, OutboxMessage]:
    return {row.order_id: row for row in OutboxMessage.objects.filter(listener=listener, order_id__in=orders)}


def reports(orders) -> Counter:
    """The step results published for these orders: (order id, event type) → how many."""
    rows = OutboxMessage.objects.filter(order_id__in=orders, event_type__startswith="Balance")
    events = set(rows.values_list("order_id", "event_type", "event_id"))  # an event has a row per listener
    return Counter((order_id, event_type) for order_id, event_type, _ in events)


def test_one_delivery_handles_every_waiting_row_of_its_listener_each_order_on_its_own(make_user, make_product):
    # given five orders of one user who can pay for three, their balance steps waiting in the outbox
    user = make_user(balance=3 * PRICE)
    orders = [o.pk for o in orders_with_tasks_purged(user_id=user.pk, product_id=make_product(price=PRICE).pk, count=5)]

    # when the broker delivers the middle order's balance step
    use_balance_task.apply(args=(created(orders[2]),)).get()

    # then that one run handled all five rows
    assert all(row.handled_at is not None for row in rows(USE, orders).values())
    # and each order has its own record and outcome, taken in order of order id
    states = dict(BalanceStep.objects.filter(order_id__in=orders).values_list("order_id", "state"))
    assert [states[order] for order in orders] == [StepState.APPLIED] * 3 + [StepState.REJECTED] * 2
    assert set(BalanceStep.objects.filter(state=StepState.REJECTED).values_list("reason", flat=True)) == {
        "insufficient balance"
    }
    # its own ledger row, and its own report
    uses = BalanceTransaction.objects.filter(kind=TransactionKind.USE, order_id__in=orders)
    assert sorted(uses.values_list("order_id", "balance_after")) == [
        (orders[0], 2 * PRICE),
        (orders[1], PRICE),
        (orders[2], 0),
    ]
    assert balance_of(user_id=user.pk) == 0
    assert reports(orders) == Counter(
        {(order, "BalanceUsed"): 1 for order in orders[:3]} | {(order, "BalanceUseFailed"): 1 for order in orders[3:]}
    )
    # each report names its own order's OrderCreated as its cause, however many orders the batch handled
    causes = dict(EventRecord.objects.filter(event_type__startswith="Balance").values_list("order_id", "causation_id"))
    assert {order: str(causes[order]) for order in orders} == {order: created(order)["event_id"] for order in orders}


def test_the_delivery_of_a_row_a_batch_handled_runs_nothing(make_user, make_product):
    # given a batch that handled two orders' balance steps
    user = make_user(balance=2 * PRICE)
    first, second = orders_with_tasks_purged(user_id=user.pk, product_id=make_product(price=PRICE).pk, count=2)
    use_balance_task.apply(args=(created(first.pk),)).get()

    # when the second order's own delivery comes
    envelope = created(second.pk)
    with CaptureQueriesContext(connection) as statements:
        use_balance_task.apply(args=(envelope,)).get()

    # then it ran its start mark and nothing else
    assert len(statements.captured_queries) == 1
    assert "WITH target AS" in statements.captured_queries[0]["sql"]
    assert BalanceTransaction.objects.filter(order_id=second.pk, kind=TransactionKind.USE).count() == 1
    assert balance_of(user_id=user.pk) == 0


def test_a_batch_leaves_the_rows_another_worker_has_started_or_their_publisher_has_not_yet_marked(
    make_user, make_product
):
    # given four orders: the second's balance step started by another worker, the fourth's row not yet
    # marked dispatched by its publisher (which would otherwise wait for the batch to mark it)
    user = make_user(balance=4 * PRICE)
    orders = [o.pk for o in orders_with_tasks_purged(user_id=user.pk, product_id=make_product(price=PRICE).pk, count=4)]
    OutboxMessage.objects.filter(listener=USE, order_id=orders[1]).update(started_by=0, started_at="2026-01-01T00:00Z")
    OutboxMessage.objects.filter(listener=USE, order_id=orders[3]).update(dispatched_at=None)

    # when the first one's delivery runs
    use_balance_task.apply(args=(created(orders[0]),)).get()

    # then it handled its own row and the third, and left the others
    handled = {order: row.handled_at is not None for order, row in rows(USE, orders).items()}
    assert handled == {orders[0]: True, orders[1]: False, orders[2]: True, orders[3]: False}
    assert set(BalanceStep.objects.values_list("order_id", flat=True)) == {orders[0], orders[2]}


def test_a_batch_that_fails_takes_nothing_gives_its_claims_back_and_sends_their_tasks_again(
    make_user, make_product, monkeypatch
):
    # given three orders' stock steps waiting, and a stock step that breaks on the last of them
    product = make_product(price=PRICE, stock=10)
    orders = [o.pk for o in orders_with_tasks_purged(user_id=make_user().pk, product_id=product.pk, count=3)]
    real_take = product_services.stock_take

    def breaking_take(takes):
        takes = list(takes)
        if any(take.order_id == orders[2] for take in takes):
            raise RuntimeError("a bug in the stock step")
        return real_take(takes)

    monkeypatch.setattr("apps.products.services.stock_take", breaking_take)

    # when the first order's delivery runs, and claims the others
    result = deduct_stock_task.apply(args=(created(orders[0]),))

    # then the run failed and nothing of it stays: no stock taken, no step recorded, no result published
    assert isinstance(result.result, RuntimeError)
    assert Stock.objects.get(product=product).quantity == 10
    assert not StockMovement.objects.filter(order_id__in=orders).exists()
    assert not StockStep.objects.filter(order_id__in=orders).exists()
    assert not OutboxMessage.objects.filter(order_id__in=orders, event_type__startswith="Stock").exists()
    # the claimed rows wait again, unstarted, and their tasks are back in the queue
    claimed = rows(DEDUCT, orders[1:])
    assert all(row.started_at is None and row.handled_at is None for row in claimed.values())
    queued = [envelope["data"]["order_id"] for task, (envelope,) in queued_tasks()["products"] if task == DEDUCT]
    assert sorted(queued) == orders[1:]
    # and the failed run's own row is parked for an operator (not a retryable error)
    assert rows(DEDUCT, orders[:1])[orders[0]].parked_at is not None


def test_a_stock_batch_takes_every_line_of_an_order_or_none(make_user, make_product):
    # given two products with 2 units and 1, and three orders waiting for their stock steps
    kettle, cup = make_product(price=PRICE, stock=2), make_product(price=PRICE, stock=1)
    user = make_user()
    both = [OrderLineInput(product_id=kettle.pk, quantity=1), OrderLineInput(product_id=cup.pk, quantity=1)]
    orders = [
        order_create(user_id=user.pk, lines=both).pk,  # takes the last cup
        order_create(user_id=user.pk, lines=both).pk,  # short of cups: takes no kettle either
        order_create(user_id=user.pk, lines=[OrderLineInput(product_id=kettle.pk, quantity=1)]).pk,
    ]
    purge_tasks()

    # when one delivery handles them all
    deduct_stock_task.apply(args=(created(orders[0]),)).get()

    # then
    states = dict(StockStep.objects.values_list("order_id", "state"))
    assert [states[order] for order in orders] == [StepState.APPLIED, StepState.REJECTED, StepState.APPLIED]
    assert StockStep.objects.get(order_id=orders[1]).reason == f"insufficient stock for product {cup.pk}"
    assert not StockMovement.objects.filter(order_id=orders[1]).exists()
    assert Stock.objects.get(product=kettle).quantity == 0 and Stock.objects.get(product=cup).quantity == 0


def test_a_batched_refund_gives_each_order_back_what_it_took_once_and_tombstones_the_others(
    make_user, make_product, listeners_on_queues, published_events
):
    # given four orders of one user: the first three took their totals, the fourth's balance step never ran
    user = make_user(balance=3 * PRICE)
    orders = [o.pk for o in orders_with_tasks_purged(user_id=user.pk, product_id=make_product(price=PRICE).pk, count=4)]
    balance_use_many(BalanceUse(order_id=o, user_id=user.pk, amount=PRICE) for o in orders[:3])
    # and all four failed (the deadline, say), their refunds waiting in the outbox
    for order in orders:
        assert order_fail(order_id=order, reason="saga deadline passed", from_statuses=UNDECIDED)
    purge_tasks()
    refunds = OutboxMessage.objects.filter(listener=REFUND, order_id__in=orders)

    # when the first one's refund is delivered, then delivered again
    refund_balance_task.apply(args=(refunds.get(order_id=orders[0]).envelope,)).get()
    refunds.update(handled_at=None)  # as if the worker had died before its marks: the records must hold
    refund_balance_task.apply(args=(refunds.get(order_id=orders[1]).envelope,)).get()

    # then the one batch refunded the three, once each, and left a tombstone for the fourth
    ledger = BalanceTransaction.objects.filter(kind=TransactionKind.REFUND, order_id__in=orders)
    assert sorted(ledger.values_list("order_id", flat=True)) == orders[:3]
    assert balance_of(user_id=user.pk) == 3 * PRICE
    states = dict(BalanceStep.objects.filter(order_id__in=orders).values_list("order_id", "reason"))
    assert [states[o] for o in orders] == ["compensated"] * 3 + ["compensated before the step ran"]
    refunded = [event.order_id for event in published_events if type(event).__name__ == "BalanceRefunded"]
    assert sorted(refunded) == orders[:3]
