"""A task run twice at the same moment, and results that arrive in any order."""

from itertools import permutations

import pytest

from apps.balance.models import BalanceTransaction
from apps.balance.selectors import balance_of
from apps.balance.tasks import refund_balance_task, use_balance_task
from apps.orders.models import Order
from apps.orders.services import order_fail, order_record_step
from apps.orders.services.saga import UNDECIDED
from apps.products.models import Stock
from apps.products.tasks import deduct_stock_task, restore_stock_task
from config.celery import app
from tests.concurrency.conftest import race, values
from tests.faults.conftest import envelopes_of
from tests.saga.conftest import event_counts

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def queued_order(make_user, make_product, place_order, order_created_envelope, listeners_on_queues):
    """An order whose step tasks were taken off the broker: the test delivers them (and their results)
    itself."""

    def place(*, balance: int = 50_000, stock: int = 5, quantity: int = 2):
        user = make_user(balance=balance)
        product = make_product(price=10_000, stock=stock)
        order_id = place_order(user, [(product.pk, quantity)])
        app.control.purge()
        return order_id, user, product, order_created_envelope(order_id)

    return place


def test_the_same_step_task_run_twice_at_the_same_moment_takes_effect_once(queued_order):
    order_id, user, product, created = queued_order()

    values(race(2, lambda _: use_balance_task.apply(args=(created,)).get()))
    values(race(2, lambda _: deduct_stock_task.apply(args=(created,)).get()))

    assert balance_of(user_id=user.pk) == 30_000
    assert BalanceTransaction.objects.filter(order_id=order_id, kind="USE").count() == 1
    assert Stock.objects.get(product=product).quantity == 3


def test_a_compensation_run_twice_at_the_same_moment_undoes_once(queued_order):
    order_id, user, product, created = queued_order()
    use_balance_task.apply(args=(created,))
    deduct_stock_task.apply(args=(created,))
    assert order_fail(order_id=order_id, reason="an operator failed it", from_statuses=UNDECIDED)
    [failed] = envelopes_of("OrderFailed", order_id)

    values(race(2, lambda _: refund_balance_task.apply(args=(failed,)).get()))
    values(race(2, lambda _: restore_stock_task.apply(args=(failed,)).get()))

    assert balance_of(user_id=user.pk) == 50_000
    assert BalanceTransaction.objects.filter(order_id=order_id, kind="REFUND").count() == 1
    assert Stock.objects.get(product=product).quantity == 5


@pytest.mark.parametrize("arrival", list(permutations([("balance", True), ("coupon", True), ("stock", False)])))
def test_step_results_in_any_order_give_the_same_single_decision(queued_order, published_events, arrival):
    order_id, *_ = queued_order()
    Order.objects.filter(pk=order_id).update(user_coupon_id=1)  # all three steps count

    for step, succeeded in arrival:
        order_record_step(order_id=order_id, step=step, succeeded=succeeded, reason="" if succeeded else "no stock")
    for step, succeeded in reversed(arrival):  # and every result once more, late
        order_record_step(order_id=order_id, step=step, succeeded=succeeded, reason="")

    order = Order.objects.get(pk=order_id)
    assert order.status == "FAILED" and order.failure_reason == "stock step failed: no stock"
    counts = event_counts(published_events)
    assert (counts["OrderFailed"], counts["OrderPaymentWaited"]) == (1, 0)


def test_a_compensation_that_arrives_before_its_step_refuses_the_step(queued_order):
    order_id, user, product, created = queued_order()
    assert order_fail(order_id=order_id, reason="the saga passed its deadline", from_statuses=UNDECIDED)
    [failed] = envelopes_of("OrderFailed", order_id)

    refund_balance_task.apply(args=(failed,))
    restore_stock_task.apply(args=(failed,))
    use_balance_task.apply(args=(created,))
    deduct_stock_task.apply(args=(created,))

    assert balance_of(user_id=user.pk) == 50_000 and Stock.objects.get(product=product).quantity == 5
    assert not BalanceTransaction.objects.filter(order_id=order_id).exists()
