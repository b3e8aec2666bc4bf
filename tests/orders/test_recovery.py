"""The recovery sweep (apps/orders/services/recovery.py), service by service, without a worker."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.balance.services import balance_use
from apps.orders.models import Order
from apps.orders.process import process_key
from apps.orders.services import orders_recover, recovery
from apps.payments.services import payment_pay
from apps.products.services import StockLine, stock_deduct
from common.redis import redis_client
from tests.participants import all_steps, record_every_step

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def an_order(make_user, make_product, place_order):
    def place(*, age_seconds: float = 0, stock: int = 5):
        user = make_user(balance=50_000)
        product = make_product(price=10_000, stock=stock)
        order_id = place_order(user, [(product.pk, 2)])
        Order.objects.filter(pk=order_id).update(created_at=timezone.now() - timedelta(seconds=age_seconds))
        return Order.objects.get(pk=order_id), product

    return place


def test_a_stale_order_whose_steps_all_ran_is_decided_from_the_participants_records(
    an_order, settings, listeners_on_queues
):
    # given both steps took effect, but Redis lost every result
    settings.SAGA_RECONCILE_AFTER_SECONDS = 1
    order, product = an_order(age_seconds=2)
    balance_use(order_id=order.pk, user_id=order.user_id, amount=order.total_price)
    stock_deduct(order_id=order.pk, lines=[StockLine(product.pk, 2)])
    redis_client().delete(process_key(order.pk))

    # when / then
    assert orders_recover() == {"reconciled": 1}
    order.refresh_from_db()
    assert order.status == "PAYMENT_WAITING" and order.steps == all_steps()


def test_a_stale_order_with_a_failed_step_is_failed_with_that_steps_reason(an_order, settings, listeners_on_queues):
    settings.SAGA_RECONCILE_AFTER_SECONDS = 1
    order, product = an_order(age_seconds=2, stock=1)
    balance_use(order_id=order.pk, user_id=order.user_id, amount=order.total_price)
    stock_deduct(order_id=order.pk, lines=[StockLine(product.pk, 2)])

    assert orders_recover() == {"reconciled": 1}
    order.refresh_from_db()
    assert order.status == "FAILED" and order.failure_reason.startswith("stock step failed: insufficient stock")


def test_an_order_with_a_step_still_missing_waits_until_its_deadline(an_order, settings):
    settings.SAGA_RECONCILE_AFTER_SECONDS = 1
    order, _ = an_order(age_seconds=2)
    balance_use(order_id=order.pk, user_id=order.user_id, amount=order.total_price)

    assert orders_recover() == {}
    assert Order.objects.get(pk=order.pk).status == "CREATED"


def test_the_deadline_fires_even_when_it_is_shorter_than_the_reconcile_delay(an_order, settings):
    # given a deadline of 5 s and a reconcile delay of 15 s, and an order 10 s old that never heard back
    settings.SAGA_DEADLINE_SECONDS = 5
    settings.SAGA_RECONCILE_AFTER_SECONDS = 15
    order, _ = an_order(age_seconds=10)

    assert orders_recover() == {"failed": 1}
    assert Order.objects.get(pk=order.pk).failure_reason == "the saga passed its deadline before every step reported"


def test_an_unpaid_order_past_its_deadline_completes_if_its_payment_went_through(an_order, settings):
    order, _ = an_order(age_seconds=settings.SAGA_DEADLINE_SECONDS + 1)
    record_every_step(order)
    payment = payment_pay(order_id=order.pk, user_id=order.user_id, amount=order.total_price)
    assert payment.status == "COMPLETED"
    Order.objects.filter(pk=order.pk).update(status="PAYMENT_WAITING")  # as if PaymentPaid were lost

    assert orders_recover() == {"completed": 1}
    assert Order.objects.get(pk=order.pk).status == "COMPLETED"


def test_an_unpaid_order_past_its_deadline_without_a_payment_fails(an_order, settings):
    order, _ = an_order(age_seconds=settings.SAGA_DEADLINE_SECONDS + 1)
    record_every_step(order)

    assert orders_recover() == {"failed": 1}
    order.refresh_from_db()
    assert (order.status, order.failure_reason) == ("FAILED", "the payment did not complete before the saga's deadline")


def test_a_step_whose_participant_was_removed_is_not_waited_for(an_order, settings, listeners_on_queues):
    # given an order placed while a participant since removed took part, its own steps done, Redis lost
    settings.SAGA_RECONCILE_AFTER_SECONDS = 1
    order, product = an_order(age_seconds=2)
    Order.objects.filter(pk=order.pk).update(participants=[*order.taking_part, "removed"])
    balance_use(order_id=order.pk, user_id=order.user_id, amount=order.total_price)
    stock_deduct(order_id=order.pk, lines=[StockLine(product.pk, 2)])
    redis_client().delete(process_key(order.pk))

    # when / then
    assert orders_recover() == {"reconciled": 1}
    assert Order.objects.get(pk=order.pk).status == "PAYMENT_WAITING"


def test_an_order_that_cannot_be_reconciled_is_still_failed_at_its_deadline_and_holds_up_no_other(
    an_order, settings, monkeypatch, caplog
):
    # given two orders past their deadline, and reconciling the older one fails for a reason of its own
    broken, _ = an_order(age_seconds=settings.SAGA_DEADLINE_SECONDS + 2)
    other, _ = an_order(age_seconds=settings.SAGA_DEADLINE_SECONDS + 1)
    reconcile = recovery.order_reconcile

    def reconcile_failing_for_one(*, order_id: int):
        if order_id == broken.pk:
            raise LookupError("a defect in this order's data")
        return reconcile(order_id=order_id)

    monkeypatch.setattr(recovery, "order_reconcile", reconcile_failing_for_one)

    # when
    done = orders_recover()

    # then the error is logged and counted, and both orders are failed by their deadline
    assert done == {"errors": 1, "failed": 2}
    assert {o.status for o in Order.objects.filter(pk__in=(broken.pk, other.pk))} == {"FAILED"}
    logged = [record.msg for record in caplog.records if isinstance(record.msg, dict)]  # structlog's events
    assert any(line["event"] == "order_recovery_failed" and line["order_id"] == broken.pk for line in logged)
