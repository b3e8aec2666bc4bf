"""An order's story in the worker's log: a real Celery worker of the fleet (its own process, as the Procfile
starts it, with the fleet's logging) runs the saga of orders placed through the API, and every line it
writes is JSON, each task's line naming its order, its saga, its event, itself and the request behind it."""

import uuid

import pytest

from apps.orders.models import Order
from eventbus.models import OutboxMessage
from tests.logging.conftest import celery_worker_process, parsed
from tests.saga_worker import queued_messages, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SENT_BY_THE_API = {"apps.balance.tasks.use_balance_task", "apps.products.tasks.deduct_stock_task"}
SENT_BY_THE_WORKER = {"apps.payments.tasks.pay_task", "apps.dataplatform.tasks.deliver_order_task"}


def settled(order_ids: list[int]) -> bool:
    """Every order completed, every listener row of theirs handled, nothing waiting in a queue."""
    return (
        Order.objects.filter(pk__in=order_ids, status="COMPLETED").count() == len(order_ids)
        and not OutboxMessage.objects.filter(order_id__in=order_ids, handled_at__isnull=True).exists()
        and not queued_messages()
    )


def place(client, product, **headers) -> tuple[int, str]:
    response = client.post(
        "/api/v1/orders", {"items": [{"product_id": product.pk, "quantity": 1}]}, format="json", **headers
    )
    assert response.status_code == 201, response.json()
    return response.json()["id"], response["X-Request-ID"]


def finished_tasks(lines: list[dict], order_id: int) -> dict[str, dict]:
    """The task_succeeded line of each task that ran for the order, by task name."""
    return {
        line["task"]: line
        for line in lines
        if line["event"] == "task_succeeded" and line.get("correlation_id") == f"order-{order_id}"
    }


# The Procfile's two pools: a thread's ids must not leak into the next task of that thread, nor into the
# task of another thread running beside it; a pool process's ids not into its next task.
@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_every_task_of_an_order_logs_a_json_line_with_its_order_saga_event_task_and_request(
    pool, make_user, make_product, client_for
):
    # given: a worker of the fleet, and three customers who can pay
    product = make_product(price=10_000, stock=10)
    clients = [client_for(make_user(balance=50_000)) for _ in range(3)]
    given_id = f"checkout-{uuid.uuid4()}"
    with celery_worker_process("logs", pool=pool, concurrency=4 if pool == "threads" else 2) as worker:
        # when: one order is placed with a request id of the caller's, and runs to its end alone
        first, first_request = place(clients[0], product, HTTP_X_REQUEST_ID=given_id)
        wait_for(lambda: settled([first]), timeout=60, message="the first order completed")
        # and two more are placed at once, without one
        others = dict(place(client, product) for client in clients[1:])
        wait_for(lambda: settled(list(others)), timeout=60, message="the other orders completed")
        written = list(worker.lines)

    # then: the API answered with the request id it was given, or with one it made
    assert first_request == given_id
    assert len({first_request, *others.values()}) == 3
    # and every line the worker wrote is one JSON object with the fleet's fields
    lines = parsed(written)
    assert lines and all({"timestamp", "level", "logger", "event"} <= line.keys() for line in lines)
    # and each task of the first order, whether the API sent it or the worker after it, names the order,
    # its saga, the event it handled, itself and the request that placed the order
    finished = finished_tasks(lines, first)
    assert finished.keys() >= SENT_BY_THE_API | SENT_BY_THE_WORKER, lines
    for line in finished.values():
        assert (line["order_id"], line["request_id"], line["level"]) == (first, given_id, "info"), line
        assert uuid.UUID(line["event_id"]) and uuid.UUID(line["task_id"]) and line["duration_ms"] >= 0, line
    assert {finished[task]["event_type"] for task in SENT_BY_THE_API} == {"OrderCreated"}
    pay = finished["apps.payments.tasks.pay_task"]
    assert pay["event_type"] == "OrderPaymentWaited" and pay["parent_task_id"] in {
        line["task_id"] for line in finished.values()
    }
    # and the orders run side by side (threads of one worker, perhaps one batch) never lend each other ids:
    # a line names one order's saga and request, or none (a batch's own lines list its orders instead)
    request_of = {first: given_id, **others}
    for order_id in others:
        assert finished_tasks(lines, order_id).keys() >= SENT_BY_THE_API | SENT_BY_THE_WORKER, lines
        for task in SENT_BY_THE_API:
            assert finished_tasks(lines, order_id)[task]["request_id"] == request_of[order_id]
    for line in (line for line in lines if "order_id" in line):
        assert line["correlation_id"] == f"order-{line['order_id']}", line
        assert line.get("request_id") in (None, request_of[line["order_id"]]), line
