"""A worker process killed in the middle of a task, before it acknowledged it: the task is delivered
again (late acknowledgement, reject on worker lost) and takes effect once. A real prefork worker; a
threads worker killed whole, whose task the outbox relay sends again as soon as the worker is gone; and a
worker killed in the middle of a batch, whose claims roll back."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from apps.orders.consistency import violations
from apps.orders.models import Order
from apps.payments.models import Payment
from common.queues import SAGA_GROUPS
from eventbus.models import OutboxMessage
from eventbus.relay import outbox_relay
from tests.processes import stop
from tests.saga.conftest import settled
from tests.saga_worker import running_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def children_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def start_worker_process(pool: str, *, gateway_ms: int = 3000) -> subprocess.Popen:
    """`celery -A config worker` in its own process, on this test's database and Redis, with a slow gateway."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "TEST_REDIS_URL": settings.REDIS_URL,
        "PAYMENT_LATENCY_MS": str(gateway_ms),
    }
    command = [
        str(Path(sys.executable).parent / "celery"), "-A", "config", "worker", "-P", pool, "-c", "1",
        "--queue-groups", ",".join(SAGA_GROUPS), "--without-gossip", "--without-mingle", "-l", "warning",
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture
def prefork_worker(transactional_db):
    worker = start_worker_process("prefork")
    wait_for(lambda: children_of(worker.pid), timeout=30, message="the worker's pool process")
    yield worker
    stop(worker)


def test_a_worker_killed_while_paying_delivers_the_payment_again_and_pays_once(
    prefork_worker, make_user, make_product, place_order
):
    user = make_user(balance=50_000)
    product = make_product(price=10_000, stock=5)
    order_id = place_order(user, [(product.pk, 1)])
    wait_for(lambda: Payment.objects.filter(order_id=order_id, status="READY").exists(), message="payment started")
    [pool_process] = children_of(prefork_worker.pid)

    # when the pool process dies in the middle of the gateway call (SIGKILL: no clean-up, no ack)
    os.kill(pool_process, signal.SIGKILL)

    # then the message comes back, a new pool process pays, and the order completes, once
    wait_for(
        lambda: Order.objects.filter(pk=order_id, status="COMPLETED").exists(),
        timeout=40,
        message="the order completed after the kill",
    )
    assert children_of(prefork_worker.pid) != [pool_process]
    assert Payment.objects.filter(order_id=order_id).count() == 1
    assert Payment.objects.get(order_id=order_id).status == "COMPLETED"
    assert violations() == []


def test_a_threads_worker_killed_while_paying_has_its_task_sent_again_by_the_relay_at_once(
    transactional_db, make_user, make_product, place_order, settings
):
    # given a threads worker paying an order at a slow gateway (its task marked started)
    worker = start_worker_process("threads")
    try:
        order_id = place_order(make_user(balance=50_000), [(make_product(price=10_000, stock=5).pk, 1)])
        wait_for(lambda: Payment.objects.filter(order_id=order_id, status="READY").exists(), timeout=30)
        payment = OutboxMessage.objects.get(order_id=order_id, listener="apps.payments.tasks.pay_task")
        assert payment.state == "STARTED" and payment.started_by is not None

        # when the whole worker dies (no pool process to reject its message: the broker holds it unacknowledged)
        worker.kill()
    finally:
        worker.wait()
    wait_for(lambda: not backend_alive(payment.started_by), message="the worker's database connection closed")

    # then the relay sends the payment again at once, long before the time limit, and it is paid once
    assert outbox_relay() >= 1
    payment.refresh_from_db()
    assert payment.dispatch_count == 2
    settings.PAYMENT_LATENCY_MS = 0
    with running_worker(purge=False):
        settled(order_id, "COMPLETED")
    assert Payment.objects.filter(order_id=order_id).count() == 1
    assert violations() == []


def backend_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone() is not None


def backend_waiting_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
        return cursor.fetchone() is not None


def test_a_worker_killed_in_the_middle_of_a_batch_leaves_no_claim_behind(
    transactional_db, make_user, make_product, place_order, settings
):
    # given ten orders whose steps wait in the broker, and the product's stock row held by another
    # transaction, so that the stock step's batch (which claims all ten rows) waits inside its transaction
    product = make_product(price=10_000, stock=100)
    orders = [place_order(make_user(balance=50_000), [(product.pk, 1)]) for _ in range(10)]
    holder = psycopg.connect(host="127.0.0.1", user="postgres", dbname=connection.settings_dict["NAME"])
    holder.execute("SELECT 1 FROM products_stock WHERE product_id = %s FOR UPDATE", [product.pk])
    worker = start_worker_process("prefork", gateway_ms=0)
    try:
        wait_for(backend_waiting_for_a_lock, timeout=30, message="the stock batch waiting for the row")
        [pool_process] = children_of(worker.pid)

        # when its process is killed in the middle of the batch, then the row is let go
        os.kill(pool_process, signal.SIGKILL)
        holder.rollback()

        # then every order completes once: the claims rolled back with the batch, and whatever the
        # deliveries passed by while they were claimed, the relay sends again
        settings.OUTBOX_START_GRACE_SECONDS = 0.5
        wait_for(
            lambda: outbox_relay() >= 0 and Order.objects.filter(pk__in=orders, status="COMPLETED").count() == 10,
            timeout=60,
            message="every order completed after the kill",
        )
    finally:
        holder.close()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert Payment.objects.filter(order_id__in=orders).count() == 10
    assert violations() == []
