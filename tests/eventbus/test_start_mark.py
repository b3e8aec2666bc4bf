"""The start mark (eventbus.listeners): a task a worker takes from the broker marks its outbox row started
with one statement; the inline listeners it runs need none; a redelivered task moves the mark."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.products.tasks import deduct_stock_task
from eventbus.models import OutboxMessage

pytestmark = pytest.mark.django_db(transaction=True)

DEDUCT = "apps.products.tasks.deduct_stock_task"
RECORD = "apps.orders.tasks.record_step_result_task"  # run inline by the stock step's task


@pytest.fixture
def new_order(make_user, make_product, place_order):
    def make() -> int:
        return place_order(make_user(balance=50_000), [(make_product(price=10_000, stock=5).pk, 1)])

    return make


def created_envelope(order_id: int) -> dict:
    return OutboxMessage.objects.filter(order_id=order_id, event_type="OrderCreated").first().envelope


def run_counting_statements(order_id: int) -> list[str]:
    envelope = created_envelope(order_id)
    with CaptureQueriesContext(connection) as statements:
        deduct_stock_task.apply(args=(envelope,)).get()
    return [statement["sql"] for statement in statements.captured_queries]


def start_marks(statements: list[str]) -> list[str]:
    return [sql for sql in statements if "started_by = pg_backend_pid()" in sql]


def test_a_task_marks_its_row_started_with_one_statement_and_its_inline_listeners_need_none(
    new_order, monkeypatch, settings
):
    # given two like orders: one runs its stock step as it is, the other without the start mark; one order
    # per run (no batch claims the other's row)
    settings.LISTENER_BATCH_SIZE = 1
    marked, unmarked = new_order(), new_order()

    # when
    with_mark = run_counting_statements(marked)
    monkeypatch.setattr("eventbus.listeners.outbox_mark_started", lambda **_: True)
    without_mark = run_counting_statements(unmarked)

    # then the start mark costs one statement, written once
    assert len(start_marks(with_mark)) == 1
    assert len(with_mark) == len(without_mark) + 1
    rows = {row.listener: row for row in OutboxMessage.objects.filter(order_id=marked)}
    assert rows[DEDUCT].started_at is not None and rows[DEDUCT].handled_at >= rows[DEDUCT].started_at
    assert rows[DEDUCT].started_by is not None  # the backend of the worker's connection, watched by the relay
    # and the inline recording of its result, handled once it ran after the task's commit, has none
    assert rows[RECORD].handled_at >= rows[DEDUCT].handled_at and rows[RECORD].started_at is None


def test_a_redelivered_task_moves_its_rows_start_mark(new_order):
    # given a row whose task a worker started an hour ago, then died with it
    order_id = new_order()
    row = OutboxMessage.objects.get(order_id=order_id, listener=DEDUCT)
    an_hour_ago = timezone.now() - timedelta(hours=1)
    OutboxMessage.objects.filter(pk=row.pk).update(started_at=an_hour_ago)

    # when the broker delivers it again
    deduct_stock_task.apply(args=(row.envelope,)).get()

    # then the mark moved to this run, which handled the row
    row.refresh_from_db()
    assert row.started_at > an_hour_ago and row.handled_at >= row.started_at
