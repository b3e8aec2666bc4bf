"""No event is lost between the database and the worker: the outbox relay sends again what never left,
and what the broker lost."""

import psycopg
import pytest
from django.db import connection

from apps.orders.consistency import violations
from apps.orders.models import Order
from config.celery import app
from eventbus.listeners import _bookkeep
from eventbus.models import OutboxMessage
from eventbus.outbox import outbox_mark_handled
from eventbus.relay import outbox_relay
from tests.broker.refusing import broker_refusing_writes
from tests.participants import all_steps
from tests.saga.conftest import settled
from tests.saga_worker import queued_messages, running_worker

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def an_order(make_user, make_product, give_coupon, place_order):
    user = make_user(balance=100_000)
    product = make_product(price=10_000, stock=5)
    return place_order(user, [(product.pk, 2)], give_coupon(user, rate="0.1").pk)


def test_an_event_committed_but_never_dispatched_is_sent_by_the_relay(an_order, settings, published_events):
    # given: the order committed, but the process died before its tasks reached the broker
    app.control.purge()
    OutboxMessage.objects.update(dispatched_at=None, dispatch_count=0)
    settings.OUTBOX_DISPATCH_GRACE_SECONDS = 0

    # when the relay runs
    assert outbox_relay() == 3

    # then the saga runs to its end as if nothing had happened
    with running_worker(purge=False):
        order = settled(an_order, "COMPLETED")
    assert order.steps == all_steps()
    assert not OutboxMessage.objects.filter(handled_at__isnull=True).exists()
    assert violations(published_events) == []


def test_messages_the_broker_lost_are_sent_again_once_their_start_grace_has_passed(
    an_order, settings, published_events
):
    # given: the tasks were dispatched, then the broker lost its queues before any worker started them
    assert queued_messages() == 3
    app.control.purge()
    assert OutboxMessage.objects.filter(dispatched_at__isnull=False, started_at__isnull=True).count() == 3

    # when the relay runs within the start grace, nothing is sent; past it, all three are
    settings.OUTBOX_START_GRACE_SECONDS = 60
    assert outbox_relay() == 0
    settings.OUTBOX_START_GRACE_SECONDS = 0
    assert outbox_relay() == 3

    # then
    with running_worker(purge=False):
        settled(an_order, "COMPLETED")
    assert (
        OutboxMessage.objects.filter(event_type="OrderCreated")
        .values_list("dispatch_count", flat=True)
        .distinct()
        .get()
        == 2
    )
    assert violations(published_events) == []


def test_a_listener_that_is_never_handled_is_parked_after_too_many_dispatches(an_order, settings):
    # given a message sent again and again without ever being handled (its broker keeps losing it)
    settings.OUTBOX_START_GRACE_SECONDS = 0
    settings.OUTBOX_MAX_DISPATCHES = 3
    for _ in range(2):
        app.control.purge()
        outbox_relay()

    # when the relay finds it worn out
    app.control.purge()
    assert outbox_relay() == 0

    # then it is parked with a reason, for an operator, and the relay leaves it alone
    parked = OutboxMessage.objects.filter(order_id=an_order, parked_at__isnull=False)
    assert parked.count() == 3
    assert set(parked.values_list("last_error", flat=True)) == {"not handled after 3 dispatches"}
    assert outbox_relay() == 0
    assert Order.objects.get(pk=an_order).status == "CREATED"


def test_a_row_for_a_listener_that_no_longer_exists_is_parked_and_does_not_block_the_others(an_order, settings):
    # given the oldest unhandled row names a task this code base no longer has (a renamed listener)
    app.control.purge()
    OutboxMessage.objects.update(dispatched_at=None)
    poisoned = OutboxMessage.objects.filter(order_id=an_order).order_by("pk").first()
    OutboxMessage.objects.filter(pk=poisoned.pk).update(listener="apps.gone.tasks.old_listener_task")
    settings.OUTBOX_DISPATCH_GRACE_SECONDS = 0

    # when / then: the others are sent, the poisoned one is parked with a reason
    assert outbox_relay() == 2
    poisoned.refresh_from_db()
    assert poisoned.parked_at is not None and poisoned.last_error == "no such listener task"
    assert queued_messages() == 2


def test_a_listener_whose_database_connection_was_cut_still_closes_its_row(an_order):
    # given a handled listener's row, and its worker's database connection cut (pg_terminate_backend)
    row = OutboxMessage.objects.filter(order_id=an_order, listener="apps.balance.tasks.use_balance_task").get()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        [pid] = cursor.fetchone()
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])

    # when the listener closes its row, then the row is handled, on a fresh connection
    _bookkeep(lambda: outbox_mark_handled([(str(row.event_id), row.listener)]))
    row.refresh_from_db()
    assert row.handled_at is not None


def test_a_relay_run_that_cannot_send_leaves_the_rows_due_with_their_dispatch_budget(an_order, settings):
    # given an order's step tasks that never reached the broker, and a broker that refuses them now
    app.control.purge()
    OutboxMessage.objects.update(dispatched_at=None, dispatch_count=0)
    settings.OUTBOX_DISPATCH_GRACE_SECONDS = 0
    settings.OUTBOX_MAX_DISPATCHES = 2

    # when the relay runs more often than the dispatch budget allows, sending nothing
    with broker_refusing_writes():
        assert [outbox_relay() for _ in range(3)] == [0, 0, 0]

    # then nothing was parked or spent: the rows are still due, and the first run after it goes through
    rows = OutboxMessage.objects.filter(order_id=an_order)
    assert list(rows.values_list("dispatched_at", "dispatch_count", "parked_at").distinct()) == [(None, 0, None)]
    assert outbox_relay() == 3
    assert queued_messages() == 3
