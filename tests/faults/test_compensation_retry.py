"""A compensation that fails is retried with backoff; one that keeps failing is parked where operators
see it, and sent again from there. The faults are real: a PostgreSQL trigger refuses the refund."""

import pytest
from django.db import connection

from apps.balance.models import BalanceTransaction
from apps.balance.selectors import balance_of
from apps.balance.tasks import refund_balance_task
from apps.orders.consistency import violations
from eventbus.models import OutboxMessage
from eventbus.relay import outbox_retry
from tests.saga.conftest import settled
from tests.saga_worker import wait_for, wait_until_idle

pytestmark = pytest.mark.django_db(transaction=True)

REFUSE_REFUNDS = """
CREATE SEQUENCE IF NOT EXISTS refund_attempts;
CREATE OR REPLACE FUNCTION refuse_refunds() RETURNS trigger AS $$
BEGIN
  -- nextval is not rolled back with the failing transaction, so it counts every attempt
  IF NEW.kind = 'REFUND' AND nextval('refund_attempts') <= %(failures)s THEN
    RAISE EXCEPTION 'injected fault: refund refused' USING ERRCODE = '%(errcode)s';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER refuse_refunds BEFORE INSERT ON balance_balancetransaction
  FOR EACH ROW EXECUTE FUNCTION refuse_refunds();
"""


@pytest.fixture
def refund_fault():
    def install(*, failures: int, errcode: str = "40001") -> None:
        with connection.cursor() as cursor:
            cursor.execute(REFUSE_REFUNDS % {"failures": failures, "errcode": errcode})

    yield install
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER IF EXISTS refuse_refunds ON balance_balancetransaction")
        cursor.execute("DROP FUNCTION IF EXISTS refuse_refunds()")
        cursor.execute("DROP SEQUENCE IF EXISTS refund_attempts")


@pytest.fixture
def failing_order(saga_worker, make_user, make_product, place_order):
    """An order whose stock step fails after its balance step took 20,000 won."""

    def place(user):
        product = make_product(price=10_000, stock=1)
        return place_order(user, [(product.pk, 2)])

    return place


def refund_rows(order_id: int) -> list[int]:
    return list(BalanceTransaction.objects.filter(order_id=order_id, kind="REFUND").values_list("amount", flat=True))


def test_a_refund_that_fails_twice_then_succeeds_is_done_once(refund_fault, failing_order, make_user, published_events):
    refund_fault(failures=2)
    user = make_user(balance=50_000)

    order_id = failing_order(user)

    settled(order_id, "FAILED")
    wait_for(lambda: refund_rows(order_id), message="the refund")
    wait_until_idle()
    assert refund_rows(order_id) == [20_000]
    assert balance_of(user_id=user.pk) == 50_000
    refund = OutboxMessage.objects.get(order_id=order_id, listener=refund_balance_task.name)
    assert refund.handled_at is not None and refund.parked_at is None
    assert refund.failure_count == 2 and "injected fault" in refund.last_error
    assert violations(published_events) == []


def test_a_refund_that_keeps_failing_is_parked_and_an_operator_sends_it_again(
    refund_fault, failing_order, make_user, monkeypatch, published_events
):
    # given a refund the database refuses every time, and a short retry budget
    refund_fault(failures=1_000, errcode="P0001")
    monkeypatch.setattr(refund_balance_task, "max_retries", 2)
    user = make_user(balance=50_000)

    order_id = failing_order(user)

    # then it is retried, then parked, never dropped: the money is still owed
    settled(order_id, "FAILED")
    wait_for(
        lambda: OutboxMessage.objects.filter(order_id=order_id, parked_at__isnull=False).exists(),
        message="the refund parked",
    )
    refund = OutboxMessage.objects.get(order_id=order_id, listener=refund_balance_task.name)
    assert refund.failure_count == 3 and refund.handled_at is None
    assert balance_of(user_id=user.pk) == 30_000 and refund_rows(order_id) == []

    # when the fault is gone and an operator sends it again
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER refuse_refunds ON balance_balancetransaction")
    assert outbox_retry(message_ids=[refund.pk]) == 1

    # then the refund happens, once
    wait_for(lambda: refund_rows(order_id), message="the refund")
    wait_until_idle()
    assert refund_rows(order_id) == [20_000] and balance_of(user_id=user.pk) == 50_000
    refund.refresh_from_db()
    assert refund.handled_at is not None and refund.parked_at is None
    assert violations(published_events) == []
