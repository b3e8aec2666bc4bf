"""The three step results of one order arriving at the same moment: the order is decided exactly once."""

import threading
from collections import Counter

import pytest
from django.db import connection, transaction

from apps.orders.consistency import violations
from apps.orders.events import OrderFailed, OrderPaymentWaited
from apps.orders.models import Order
from common.steps import StepOutcome
from tests.concurrency.conftest import all_decided, deliver, race, values
from tests.participants import all_steps
from tests.saga_worker import running_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 20


def deliver_together(order: Order, results: list[tuple[str, StepOutcome]]) -> list[str | None]:
    return values(race(len(results), lambda i: deliver(order.pk, *results[i])))


def decisions(published_events, order_id: int) -> list[str]:
    return [
        type(event).__name__
        for event in published_events
        if isinstance(event, OrderPaymentWaited | OrderFailed) and event.order_id == order_id
    ]


def test_three_successful_results_at_once_decide_payment_waited_once(orders_with_steps_done, published_events):
    # given: orders whose three steps all succeeded
    orders = orders_with_steps_done(ROUNDS, stock=ROUNDS)

    for order, steps in orders:
        assert all(outcome.succeeded for outcome in steps.values())
        # when: the three results arrive at the same moment
        returned = deliver_together(order, list(steps.items()))

        # then: exactly one delivery decided, and the order waits for its payment
        assert Counter(returned) == {"OrderPaymentWaited": 1, None: 2}
        assert decisions(published_events, order.pk) == ["OrderPaymentWaited"]
        order.refresh_from_db()
        assert order.status == "PAYMENT_WAITING"
        assert order.steps == all_steps()

    # and the saga carries every order through to the end
    with running_worker(purge=False):
        finished = all_decided([order.pk for order, _ in orders])
    assert Counter(order.status for order in finished) == {"COMPLETED": ROUNDS}
    assert violations(published_events) == []


def test_mixed_results_at_once_decide_failed_once(orders_with_steps_done, published_events):
    # given: orders whose balance and coupon steps succeeded and whose stock step failed
    orders = orders_with_steps_done(ROUNDS, stock=0)

    for order, steps in orders:
        assert [step for step, outcome in steps.items() if not outcome.succeeded] == ["stock"]
        # when: the three results arrive at the same moment
        returned = deliver_together(order, list(steps.items()))

        # then: exactly one delivery decided, and the order failed for its stock
        assert Counter(returned) == {"OrderFailed": 1, None: 2}
        assert decisions(published_events, order.pk) == ["OrderFailed"]
        order.refresh_from_db()
        assert order.status == "FAILED"
        assert order.failure_reason == f"stock step failed: {steps['stock'].reason}"

    # and every failed order is compensated once
    with running_worker(purge=False):
        finished = all_decided([order.pk for order, _ in orders])
    assert Counter(order.status for order in finished) == {"FAILED": ROUNDS}
    events = Counter(type(event).__name__ for event in published_events)
    assert events["BalanceRefunded"] == events["CouponRestored"] == ROUNDS and events["StockRestored"] == 0
    assert violations(published_events) == []


def waiting_on_locks() -> int:
    """Connections to this test database blocked on a row lock right now."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def holding_the_order_row(order_id: int, until_waiting: int) -> tuple[threading.Thread, dict]:
    """A thread that locks the order's row until `until_waiting` connections queue behind it: the deciders
    then stand at the fence together, as they would if their lease had run out mid-decision."""
    locked = threading.Event()
    seen: dict = {}

    def hold() -> None:
        try:
            with transaction.atomic():
                Order.objects.select_for_update().get(pk=order_id)
                locked.set()
                seen["waiting"] = wait_for(
                    lambda: (n := waiting_on_locks()) >= until_waiting and n, timeout=10, message="deciders"
                )
        finally:
            locked.set()
            connection.close()

    thread = threading.Thread(target=hold, name="row-holder")
    thread.start()
    assert locked.wait(10)
    return thread, seen


def test_the_database_fence_decides_once_when_the_lock_lease_runs_out(
    settings, orders_with_steps_done, published_events
):
    # given: a lock lease far too short to cover a decision, so the lock alone protects nothing,
    # and every step result delivered twice (a redelivery), so that at least two deliveries see all three
    settings.ORDER_LOCK_LEASE_SECONDS = 0.001
    settings.ORDER_LOCK_WAIT_SECONDS = 0.05
    orders = orders_with_steps_done(5, stock=5)

    for order, steps in orders:
        results = [*steps.items(), *steps.items()]
        holder, seen = holding_the_order_row(order.pk, until_waiting=2)

        # when: all six results arrive at once while the order's row is busy
        returned = deliver_together(order, results)
        holder.join(10)

        # then: several deliveries reached the decision together, and only one of them published
        assert seen.get("waiting", 0) >= 2, "the deliveries never met at the fence"
        assert Counter(returned) == {"OrderPaymentWaited": 1, None: 5}
        assert decisions(published_events, order.pk) == ["OrderPaymentWaited"]

    with running_worker(purge=False):
        finished = all_decided([order.pk for order, _ in orders])
    assert Counter(order.status for order in finished) == {"COMPLETED": 5}
    assert violations(published_events) == []
