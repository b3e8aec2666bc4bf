"""The relay tells a lost message from a task a worker runs (the start mark) and from a backlog (what waits
in the queue): a lost message is sent again within seconds, a running task only once its time limit has
certainly passed, and a burst waiting for the workers is not sent twice."""

import time
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from apps.orders.consistency import violations
from config.celery import app
from eventbus.models import OutboxMessage
from eventbus.outbox import dispatch, outbox_mark_failed
from eventbus.relay import outbox_relay
from eventbus.resend import started_timeout_seconds
from tests.saga.conftest import settled
from tests.saga_worker import queued_messages, running_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

PAY = "apps.payments.tasks.pay_task"


@pytest.fixture
def an_order(make_user, make_product, give_coupon, place_order) -> int:
    """An order whose three step tasks wait in the broker (no worker runs yet)."""
    user = make_user(balance=100_000)
    product = make_product(price=10_000, stock=5)
    return place_order(user, [(product.pk, 2)], give_coupon(user, rate="0.1").pk)


def steps_of(order_id: int):
    return OutboxMessage.objects.filter(order_id=order_id, event_type="OrderCreated")


def seconds_ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


def test_a_message_lost_before_any_worker_started_it_is_sent_again_within_the_start_grace(
    an_order, settings, published_events
):
    # given: the broker lost the order's step tasks before a worker took them
    settings.OUTBOX_START_GRACE_SECONDS = 0.5
    app.control.purge()
    assert started_timeout_seconds() > 60  # the time limit, which this does not wait for

    # when / then: within the grace nothing is sent; just past it, all three are
    assert outbox_relay() == 0
    time.sleep(0.6)
    assert outbox_relay() == 3

    # and the saga runs to its end
    with running_worker(purge=False):
        settled(an_order, "COMPLETED")
    assert set(steps_of(an_order).values_list("dispatch_count", flat=True)) == {2}
    assert violations(published_events) == []


def test_a_task_still_running_is_not_sent_again_before_its_time_limit(an_order, settings):
    # given a payment that takes its time at the gateway, its task started by a worker
    settings.PAYMENT_LATENCY_MS = 2500
    settings.OUTBOX_START_GRACE_SECONDS = 0.2
    with running_worker(purge=False):
        payment = wait_for(
            lambda: OutboxMessage.objects.filter(order_id=an_order, listener=PAY, started_at__isnull=False).first(),
            message="the payment started",
        )
        time.sleep(0.5)  # past the start grace

        # when the relay runs while it is still running
        outbox_relay()

        # then it is left to its worker, and the order completes with one dispatch of the payment
        payment.refresh_from_db()
        assert payment.handled_at is None and payment.dispatch_count == 1
        settled(an_order, "COMPLETED")
    payment.refresh_from_db()
    assert payment.handled_at is not None and payment.dispatch_count == 1


def test_a_started_row_is_sent_again_once_its_time_limit_has_certainly_passed(an_order, settings):
    # given the order's step tasks started by a worker that then died, losing them
    settings.OUTBOX_START_GRACE_SECONDS = 0
    app.control.purge()
    timeout = started_timeout_seconds()
    steps_of(an_order).update(dispatched_at=seconds_ago(timeout + 60), started_at=seconds_ago(timeout - 5))

    # when / then: not before the time limit and its margin have passed since the start, then at once
    assert outbox_relay() == 0
    steps_of(an_order).update(started_at=seconds_ago(timeout + 1))
    assert outbox_relay() == 3
    assert queued_messages() == 3


def backend_of_a_closed_connection() -> int:
    """The pid a PostgreSQL backend had, once its connection (its worker process) is gone."""
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as other:
        [pid] = other.execute("SELECT pg_backend_pid()").fetchone()
    with connection.cursor() as cursor:
        wait_for(lambda: not _backend_alive(cursor, pid), message="the backend gone")
    return pid


def _backend_alive(cursor, pid: int) -> bool:
    cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
    return cursor.fetchone() is not None


def test_a_started_row_whose_worker_died_is_sent_again_at_once(an_order, settings):
    # given the order's step tasks just started by workers: two of them alive (this connection stands for
    # theirs), the third one's worker killed with its database connection
    app.control.purge()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        [alive] = cursor.fetchone()
    steps_of(an_order).update(dispatched_at=seconds_ago(1), started_at=timezone.now(), started_by=alive)
    dead = steps_of(an_order).order_by("pk").last()
    OutboxMessage.objects.filter(pk=dead.pk).update(started_by=backend_of_a_closed_connection())

    # when the relay runs, then the dead worker's task is sent again, the running ones are not
    assert outbox_relay() == 1
    assert list(steps_of(an_order).filter(dispatch_count=2).values_list("pk", flat=True)) == [dead.pk]


def test_a_retry_waiting_its_backoff_in_a_worker_is_not_sent_again(an_order, settings):
    # given a step that failed and waits for its retry in a worker (nothing in the queue)
    app.control.purge()
    retrying = steps_of(an_order).first()
    outbox_mark_failed(event_id=str(retrying.event_id), listener=retrying.listener, error="busy", park=False)
    settings.OUTBOX_START_GRACE_SECONDS = 0

    # when the relay runs, then the two lost ones are sent, and the retrying one is left to its chain
    assert outbox_relay() == 2
    retrying.refresh_from_db()
    assert retrying.dispatch_count == 1 and retrying.state == "STARTED"
    assert retrying.started_by is None  # held by the worker process, not by the connection that marked it


def test_a_burst_waiting_in_its_queues_is_not_sent_again_until_it_is_lost(
    make_user, make_product, place_order, settings
):
    # given a burst of orders whose step tasks wait in the broker for busy workers
    product = make_product(price=100, stock=1000)
    users = [make_user(balance=10_000) for _ in range(20)]
    orders = [place_order(user, [(product.pk, 1)]) for user in users]
    rows = OutboxMessage.objects.filter(order_id__in=orders, event_type="OrderCreated")
    assert queued_messages() == rows.count() == 40
    settings.OUTBOX_START_GRACE_SECONDS = 0

    # when the relay runs, past the start grace: nothing is sent again
    assert outbox_relay() == 0

    # and a row that has waited past the time limit is sent again even so
    oldest = rows.order_by("pk")[:2]
    rows.filter(pk__in=list(oldest.values_list("pk", flat=True))).update(
        dispatched_at=seconds_ago(started_timeout_seconds() + 1)
    )
    assert outbox_relay() == 2

    # when the broker loses the queues, then every row is sent again at once (the two just sent as well)
    app.control.purge()
    assert outbox_relay() == 40
    assert queued_messages() == 40


def test_when_the_broker_cannot_say_what_waits_a_row_waits_as_for_a_backlog(an_order, settings, monkeypatch):
    # given a broker whose queues cannot be read (another broker, or unreachable), and two rows not started:
    # one dispatched 5 s ago, one past the started timeout
    monkeypatch.setattr("eventbus.resend.waiting_messages", lambda queues: dict.fromkeys(queues))
    app.control.purge()
    settings.OUTBOX_START_GRACE_SECONDS = 2
    recent, old = steps_of(an_order).order_by("pk")[:2]
    OutboxMessage.objects.filter(pk=recent.pk).update(dispatched_at=seconds_ago(5))
    OutboxMessage.objects.filter(pk=old.pk).update(dispatched_at=seconds_ago(started_timeout_seconds() + 1))

    # when the relay runs: the recent one may be waiting its turn, so only the old one is sent again
    assert outbox_relay() == 1
    recent.refresh_from_db()
    old.refresh_from_db()
    assert (recent.dispatch_count, old.dispatch_count) == (1, 2)


def test_rows_that_cannot_be_among_the_messages_of_a_busy_queue_are_sent_again_within_the_start_grace(
    make_user, make_product, place_order, settings
):
    # given a burst of 10 orders whose 20 step tasks were dispatched in two waves, the first wave 10 s ago
    product = make_product(price=100, stock=1000)
    orders = [place_order(make_user(balance=10_000), [(product.pk, 1)]) for _ in range(10)]
    rows = OutboxMessage.objects.filter(order_id__in=orders, event_type="OrderCreated")
    first_wave = rows.filter(order_id__in=orders[:3])
    first_wave.update(dispatched_at=seconds_ago(10))
    rows.exclude(pk__in=first_wave).update(dispatched_at=seconds_ago(5))
    # and the broker lost the first wave's messages, while the second wave's wait for busy workers
    app.control.purge()
    for row in rows.exclude(pk__in=first_wave):
        dispatch(app.tasks[row.listener], row.envelope)
    settings.OUTBOX_START_GRACE_SECONDS = 2

    # when the relay runs: the queues hold the 14 messages dispatched last, so the 6 older rows are lost
    assert outbox_relay() == 6
    assert set(rows.filter(dispatch_count=2).values_list("order_id", flat=True)) == set(orders[:3])
    # and what waits is not sent again, however long the relay runs
    assert outbox_relay() == 0
    assert queued_messages() == 20
