"""An error line names what failed and for which order: an operator reading it knows where to look."""

import uuid

import pytest

from apps.balance.models import BalanceStep
from apps.balance.tasks import refund_balance_task
from apps.orders.events import OrderFailed
from apps.orders.services import recovery
from apps.orders.services.recovery import orders_recover
from common.steps import StepState
from eventbus.events import envelope_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_refund_that_cannot_be_made_fails_its_task_with_an_error_line_naming_the_order(log_lines, task_receivers):
    # given: the balance step of an order is recorded as taken, but the ledger has no USE for it to give back
    order_id = 424_242
    BalanceStep.objects.create(order_id=order_id, state=StepState.APPLIED)
    failed = envelope_of(OrderFailed(order_id=order_id, user_id=1, user_coupon_id=None, reason="payment failed"))

    # when: the refund runs, in a worker's way, and fails at every retry
    result = refund_balance_task.apply(args=(failed,))

    # then: the refund is refused, and the error line says which order, saga, event and task
    assert isinstance(result.result, LookupError)
    errors = [line for line in log_lines() if line["level"] == "error"]
    assert errors, log_lines()
    task_failed = next(line for line in errors if line["event"] == "task_failed")
    assert (task_failed["order_id"], task_failed["correlation_id"], task_failed["event_id"]) == (
        order_id,
        f"order-{order_id}",
        failed["event_id"],
    )
    assert task_failed["task"] == "apps.balance.tasks.refund_balance_task" and uuid.UUID(task_failed["task_id"])
    assert "without a USE in the ledger" in task_failed["exception"]
    # and every error line of the run, Celery's own included, names the order
    assert {line["order_id"] for line in errors} == {order_id}
    # and the retries before it said so too, as warnings
    retries = [line for line in log_lines() if line["event"] == "task_retrying"]
    assert retries and {(line["level"], line["order_id"]) for line in retries} == {("warning", order_id)}


def test_an_order_the_sweep_cannot_recover_is_logged_as_an_error_naming_the_order(
    log_lines, monkeypatch, make_user, make_product, place_order, settings
):
    # given: an undecided order whose reconciliation fails for a reason of its own
    settings.SAGA_RECONCILE_AFTER_SECONDS = 0
    order_id = place_order(make_user(balance=50_000), [(make_product().pk, 1)])

    def reconcile_failing(*, order_id: int):
        raise LookupError("a defect in this order's data")

    monkeypatch.setattr(recovery, "order_reconcile", reconcile_failing)

    # when
    assert orders_recover() == {"errors": 1}

    # then
    [error] = [line for line in log_lines() if line["level"] == "error"]
    assert (error["event"], error["order_id"], error["correlation_id"], error["action"]) == (
        "order_recovery_failed",
        order_id,
        f"order-{order_id}",
        "reconcile_failing",
    )
    assert "a defect in this order's data" in error["exception"]
