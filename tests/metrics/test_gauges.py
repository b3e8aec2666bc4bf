"""The gauges of state, read from PostgreSQL at scrape time (apps/orders/metrics.py, eventbus/metrics.py):
each counts exactly the rows it names, as /metrics shows them."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.orders.models import Order, OrderStatus
from eventbus.models import OutboxMessage

pytestmark = pytest.mark.django_db

ORDER_GAUGES = ("saga_orders_in_flight", "saga_orders_past_deadline")
OUTBOX_GAUGES = ("outbox_pending", "outbox_parked")


@pytest.fixture
def make_order(make_user):
    user = make_user()

    def make(status: str, *, age: timedelta = timedelta(0)) -> Order:
        order = Order.objects.create(user=user, status=status, gross_price=1_000, total_price=1_000)
        Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - age)  # created_at is auto_now_add
        return order

    return make


def make_outbox_row(*, age: timedelta = timedelta(0), handled: bool = False, parked: bool = False) -> OutboxMessage:
    now = timezone.now()
    row = OutboxMessage.objects.create(
        event_id=uuid.uuid4(),
        event_type="OrderCreated",
        listener="apps.balance.tasks.use_balance_task",
        envelope={},
        handled_at=now if handled else None,
        parked_at=now if parked else None,
    )
    OutboxMessage.objects.filter(pk=row.pk).update(created_at=now - age)
    return row


def test_orders_in_flight_and_past_the_deadline_count_created_and_payment_waiting_orders(settings, scrape, make_order):
    settings.SAGA_DEADLINE_SECONDS = 60
    before = scrape()

    make_order(OrderStatus.CREATED)
    make_order(OrderStatus.PAYMENT_WAITING, age=timedelta(seconds=30))
    make_order(OrderStatus.CREATED, age=timedelta(seconds=61))
    make_order(OrderStatus.PAYMENT_WAITING, age=timedelta(hours=2))
    for ended in (OrderStatus.COMPLETED, OrderStatus.FAILED, OrderStatus.CANCELED):
        make_order(ended, age=timedelta(hours=2))  # old, but their saga ended: neither in flight nor stuck

    after = scrape()
    assert after.minus(before, "saga_orders_in_flight") == 4
    assert after.minus(before, "saga_orders_past_deadline") == 2


def test_the_outbox_gauges_count_pending_and_parked_rows_and_the_oldest_pending_age(scrape):
    OutboxMessage.objects.all().delete()  # the test's transaction is rolled back after it
    before = scrape()

    make_outbox_row()
    oldest = make_outbox_row(age=timedelta(seconds=120))
    make_outbox_row(age=timedelta(hours=5), handled=True)  # done: neither pending nor its age
    make_outbox_row(age=timedelta(hours=5), parked=True)  # given up on: parked, not pending
    make_outbox_row(age=timedelta(hours=5), parked=True)
    make_outbox_row(age=timedelta(hours=6), parked=True, handled=True)  # parked, then retried and handled

    after = scrape()
    assert after.minus(before, "outbox_pending") == 2
    assert after.minus(before, "outbox_parked") == 2
    assert 120 <= after.value("outbox_oldest_pending_age_seconds") < 180

    OutboxMessage.objects.filter(pk=oldest.pk).update(handled_at=timezone.now())
    assert scrape().value("outbox_oldest_pending_age_seconds") < 60


def test_with_nothing_pending_the_oldest_pending_age_is_zero(scrape):
    OutboxMessage.objects.filter(handled_at__isnull=True).update(handled_at=timezone.now())
    make_outbox_row(age=timedelta(hours=1), parked=True)

    scraped = scrape()

    assert scraped.value("outbox_pending") == 0
    assert scraped.value("outbox_oldest_pending_age_seconds") == 0  # a parked row is not pending
    assert scraped.value("outbox_parked") >= 1
