"""saga_orders_total and saga_order_duration_seconds (apps/orders/metrics.py): every service that moves an
order to COMPLETED, FAILED or CANCELED counts the move once, after its transaction commits; a repeat, a
move another caller made first, and a rolled-back move count nothing."""

import pytest
from django.db import transaction

from apps.orders.models import Order, OrderStatus
from apps.orders.services import (
    OrderLineInput,
    order_cancel,
    order_complete,
    order_create,
    order_fail,
    order_record_step,
    orders_recover,
)
from apps.orders.services.saga import UNDECIDED, UNPAID
from tests.participants import record_every_step

pytestmark = pytest.mark.django_db

ORDERS = "saga_orders_total"
DURATIONS = "saga_order_duration_seconds_count"
OUTCOMES = ("completed", "failed", "canceled")


@pytest.fixture
def created_order(make_user, make_product):
    def make() -> Order:
        user = make_user(balance=100_000)
        return order_create(user_id=user.pk, lines=[OrderLineInput(make_product(price=10_000).pk, 1)])

    return make


@pytest.fixture
def payment_waiting_order(created_order):
    def make() -> Order:
        order = created_order()
        record_every_step(order)
        order.refresh_from_db()
        assert order.status == OrderStatus.PAYMENT_WAITING
        return order

    return make


@pytest.fixture
def counted(scrape):
    """What /metrics counted since the fixture was made: {outcome: orders} and {outcome: durations}."""
    before = scrape()

    def since() -> tuple[dict[str, float], dict[str, float]]:
        now = scrape()
        orders = {outcome: now.minus(before, ORDERS, outcome=outcome) for outcome in OUTCOMES}
        durations = {outcome: now.minus(before, DURATIONS, outcome=outcome) for outcome in OUTCOMES}
        return orders, durations

    return since


def test_a_completion_counts_once_when_its_transaction_commits(
    payment_waiting_order, counted, django_capture_on_commit_callbacks
):
    order = payment_waiting_order()

    with django_capture_on_commit_callbacks() as callbacks:
        assert order_complete(order_id=order.pk) is True
    assert counted() == ({"completed": 0, "failed": 0, "canceled": 0}, {"completed": 0, "failed": 0, "canceled": 0})
    for callback in callbacks:  # the commit
        callback()

    assert counted() == ({"completed": 1, "failed": 0, "canceled": 0}, {"completed": 1, "failed": 0, "canceled": 0})


def test_a_repeated_completion_counts_nothing_more(payment_waiting_order, counted, django_capture_on_commit_callbacks):
    order = payment_waiting_order()
    with django_capture_on_commit_callbacks(execute=True):
        order_complete(order_id=order.pk)

    with django_capture_on_commit_callbacks(execute=True):
        assert order_complete(order_id=order.pk) is False

    assert counted()[0]["completed"] == 1


def test_a_failed_step_decision_counts_one_failure_with_its_duration(
    created_order, counted, django_capture_on_commit_callbacks
):
    order = created_order()

    with django_capture_on_commit_callbacks(execute=True):
        record_every_step_but_stock_fails(order)

    assert Order.objects.get(pk=order.pk).status == OrderStatus.FAILED
    assert counted() == ({"completed": 0, "failed": 1, "canceled": 0}, {"completed": 0, "failed": 1, "canceled": 0})


def record_every_step_but_stock_fails(order: Order) -> None:
    order.refresh_from_db(fields=["participants"])
    for step in order.participants:
        order_record_step(order_id=order.pk, step=step, succeeded=step != "stock", reason="insufficient stock")


def test_failing_an_order_counts_once_and_a_second_attempt_nothing(
    created_order, counted, django_capture_on_commit_callbacks
):
    order = created_order()

    with django_capture_on_commit_callbacks(execute=True):
        assert order_fail(order_id=order.pk, reason="the deadline", from_statuses=UNDECIDED) is True
        assert order_fail(order_id=order.pk, reason="the deadline", from_statuses=UNDECIDED) is False
        assert order_fail(order_id=order.pk, reason="payment failed", from_statuses=UNPAID) is False

    assert counted()[0] == {"completed": 0, "failed": 1, "canceled": 0}


def test_a_move_rolled_back_counts_nothing(payment_waiting_order, counted, django_capture_on_commit_callbacks):
    order = payment_waiting_order()

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        order_complete(order_id=order.pk)
        raise RuntimeError("the transaction fails after the move")

    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAYMENT_WAITING
    assert counted()[0] == {"completed": 0, "failed": 0, "canceled": 0}


def test_a_completed_order_cancelled_counts_once_completed_and_once_canceled(
    payment_waiting_order, counted, django_capture_on_commit_callbacks
):
    order = payment_waiting_order()
    with django_capture_on_commit_callbacks(execute=True):
        order_complete(order_id=order.pk)

    with django_capture_on_commit_callbacks(execute=True):
        assert order_cancel(order_id=order.pk) == OrderStatus.CANCELED

    orders, durations = counted()
    assert orders == {"completed": 1, "failed": 0, "canceled": 1}
    assert durations == {"completed": 1, "failed": 0, "canceled": 0}  # the saga's time ended at completion


def test_an_order_cancelled_before_its_decision_counts_as_failed(
    created_order, counted, django_capture_on_commit_callbacks
):
    order = created_order()

    with django_capture_on_commit_callbacks(execute=True):
        assert order_cancel(order_id=order.pk) == OrderStatus.FAILED

    assert counted()[0] == {"completed": 0, "failed": 1, "canceled": 0}


def test_the_sweep_counts_what_it_settles(
    settings, created_order, payment_waiting_order, counted, django_capture_on_commit_callbacks
):
    settings.SAGA_DEADLINE_SECONDS = 0
    settings.SAGA_RECONCILE_AFTER_SECONDS = 0
    undecided, unpaid = created_order(), payment_waiting_order()

    with django_capture_on_commit_callbacks(execute=True):
        assert orders_recover() == {"failed": 2}  # undecided past the deadline; waiting for a payment never made

    assert {Order.objects.get(pk=order.pk).status for order in (undecided, unpaid)} == {OrderStatus.FAILED}
    assert counted()[0] == {"completed": 0, "failed": 2, "canceled": 0}
