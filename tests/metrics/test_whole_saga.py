"""/metrics counts every process of the fleet: an order placed through the API and carried by a real
worker is counted once as it ends, by the worker process that ended it, with its duration, the tasks that
carried it and the API request that placed it, all in the API process's answer.

The worker is a prefork worker in a process of its own, started with the test process's
PROMETHEUS_MULTIPROC_DIR (config/settings/test.py puts it in the environment it inherits), as `make run`
gives one directory to the whole fleet."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from apps.orders.models import Order
from common.metrics.processes import multiprocess_directory
from common.queues import SAGA_GROUPS
from tests.processes import stop
from tests.saga.conftest import finished
from tests.saga_worker import wait_for

ROOT = Path(__file__).resolve().parents[2]
ORDERS = "saga_orders_total"
TASKS = "celery_tasks_total"
PLACED = {"method": "POST", "route": "api/v1/orders", "status": "201"}
# The tasks one order without a coupon costs (docs/design.md §8): its steps, the payment, the delivery.
CARRIERS = (
    "apps.balance.tasks.use_balance_task",
    "apps.products.tasks.deduct_stock_task",
    "apps.payments.tasks.pay_task",
    "apps.dataplatform.tasks.deliver_order_task",
)


def pool_processes(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.fixture
def worker_process(transactional_db):
    """`celery -A config worker -P prefork -c 1` on this test's database and Redis, every saga queue."""
    db = connection.settings_dict
    environment = {
        **os.environ,  # PROMETHEUS_MULTIPROC_DIR among them
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "TEST_REDIS_URL": settings.REDIS_URL,
    }
    command = [
        str(Path(sys.executable).parent / "celery"), "-A", "config", "worker", "-P", "prefork", "-c", "1",
        "--queue-groups", ",".join(SAGA_GROUPS), "--without-gossip", "--without-mingle", "-l", "warning",
    ]  # fmt: skip
    worker = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(lambda: pool_processes(worker.pid), timeout=30, message="the worker's pool process")
    yield worker
    stop(worker)


def test_an_order_carried_by_a_worker_process_is_counted_once_in_the_apis_answer(
    worker_process, make_user, make_product, client_for, scrape
):
    # given a scrape before the order
    before = scrape()
    user = make_user(balance=50_000)
    product = make_product(price=10_000, stock=5)

    # when the order is placed through the API and a worker process carries it to the end
    response = client_for(user).post(
        "/api/v1/orders", {"items": [{"product_id": product.pk, "quantity": 1}]}, format="json"
    )
    assert response.status_code == 201, response.json()
    order_id = response.json()["id"]
    wait_for(lambda: Order.objects.filter(pk=order_id, status="COMPLETED").exists(), timeout=30, message="completed")
    wait_for(
        lambda: all(scrape().minus(before, TASKS, task=task, outcome="succeeded") for task in CARRIERS),
        timeout=30,
        message="every task of the order counted",
    )

    # then the API's answer holds what the worker process counted, once
    after = scrape()
    assert after.minus(before, ORDERS, outcome="completed") == 1
    assert after.minus(before, ORDERS, outcome="failed") == after.minus(before, ORDERS, outcome="canceled") == 0
    assert after.minus(before, "saga_order_duration_seconds_count", outcome="completed") == 1
    assert 0 < after.minus(before, "saga_order_duration_seconds_sum", outcome="completed") < 30
    for task in CARRIERS:
        assert after.minus(before, TASKS, task=task, outcome="succeeded") == 1, task
        assert after.minus(before, "celery_task_duration_seconds_count", task=task) == 1, task
    assert after.minus(before, "http_requests_total", **PLACED) == 1
    assert after.minus(before, "http_request_duration_seconds_count", method="POST", route="api/v1/orders") == 1
    # and it was the worker's pool process that counted them, in its own file of the shared directory
    [pool_process] = pool_processes(worker_process.pid)
    assert (Path(multiprocess_directory()) / f"counter_{pool_process}.db").exists()


def test_a_failed_order_is_counted_as_failed(saga_worker, make_user, make_product, client_for, scrape):
    before = scrape()
    user = make_user(balance=5_000)  # the balance step fails: 10,000 won to pay
    product = make_product(price=10_000, stock=5)

    response = client_for(user).post(
        "/api/v1/orders", {"items": [{"product_id": product.pk, "quantity": 1}]}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert finished(response.json()["id"]).status == "FAILED"

    after = scrape()
    assert after.minus(before, ORDERS, outcome="failed") == 1
    assert after.minus(before, ORDERS, outcome="completed") == after.minus(before, ORDERS, outcome="canceled") == 0
    assert after.minus(before, "saga_order_duration_seconds_count", outcome="failed") == 1
    assert after.minus(before, TASKS, task="apps.balance.tasks.use_balance_task", outcome="succeeded") == 1
    assert after.minus(before, "http_requests_total", **PLACED) == 1
