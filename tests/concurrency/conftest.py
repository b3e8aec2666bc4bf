"""Helpers for races: start many callables at the same moment and collect what each one got."""

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.orders.models import Order, OrderStatus
from apps.orders.process import OrderLockBusy
from apps.orders.services import OrderLineInput, order_create, order_record_step
from common.steps import StepOutcome
from config.celery import app
from tests.participants import run_every_step
from tests.saga_worker import wait_for, wait_until_idle

PRICE = 10_000


@dataclass(frozen=True)
class Outcome:
    """What one racer got: the value it returned or the exception it raised."""

    value: Any = None
    error: BaseException | None = None

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def race(n: int, fn: Callable[[int], Any], *, timeout: float = 60.0) -> list[Outcome]:
    """Run fn(0) … fn(n-1) in n threads released together by a barrier; return their outcomes in order.

    Each thread opens its database connection before the barrier, so that all of them start the work
    itself at the same moment, and closes it when done."""
    barrier = threading.Barrier(n)
    outcomes: list[Outcome | None] = [None] * n

    def run(index: int) -> None:
        try:
            connection.ensure_connection()
            barrier.wait(timeout)
            outcomes[index] = Outcome(value=fn(index))
        except BaseException as error:  # the test decides which errors it expects
            barrier.abort()  # a racer that failed before the start must not leave the others waiting
            outcomes[index] = Outcome(error=error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,), name=f"racer-{index}") for index in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a racer did not finish in time"
    return [outcome for outcome in outcomes if outcome is not None]


def values(outcomes: Sequence[Outcome]) -> list[Any]:
    """The racers' values; re-raises the first unexpected exception."""
    return [outcome.result() for outcome in outcomes]


def post_all(clients: Sequence[APIClient], path: str | Sequence[str], bodies: Sequence[dict]) -> list[Any]:
    """POST bodies[i] to path (or path[i]) with clients[i], all at the same moment; one client per thread."""
    paths = [path] * len(clients) if isinstance(path, str) else list(path)
    return values(race(len(clients), lambda i: clients[i].post(paths[i], bodies[i], format="json")))


def all_decided(order_ids: Sequence[int]) -> list[Order]:
    """Wait until every order is COMPLETED, FAILED or CANCELED and the worker has nothing left to do."""
    terminal = (OrderStatus.COMPLETED, OrderStatus.FAILED, OrderStatus.CANCELED)
    wait_for(
        lambda: Order.objects.filter(pk__in=order_ids, status__in=terminal).count() == len(order_ids),
        timeout=45,
        message=f"{len(order_ids)} orders decided",
    )
    wait_until_idle()
    return list(Order.objects.filter(pk__in=order_ids).order_by("pk"))


def orders_with_tasks_purged(
    *, user_id: int, product_id: int, count: int, user_coupon_ids: Sequence[int | None] | None = None
) -> list[Order]:
    """`count` one-unit orders created with no worker running, their OrderCreated tasks purged from the
    broker: the test runs the steps (or delivers their results) itself."""
    coupon_ids = list(user_coupon_ids) if user_coupon_ids is not None else [None] * count
    orders = [
        order_create(user_id=user_id, lines=[OrderLineInput(product_id=product_id, quantity=1)], user_coupon_id=coupon)
        for coupon in coupon_ids
    ]
    purge_tasks()
    return orders


def purge_tasks() -> None:
    """Drop every task waiting in the saga's queues (nothing consumes them while no worker runs)."""
    app.control.purge()


def deliver(order_id: int, step: str, outcome: StepOutcome) -> str | None:
    """What record_step_result_task does with one step result: a busy lock is retried, not dropped."""
    while True:
        try:
            return order_record_step(order_id=order_id, step=step, succeeded=outcome.succeeded, reason=outcome.reason)
        except OrderLockBusy:
            time.sleep(0.01)


@pytest.fixture
def orders_with_steps_done(make_user, make_product, give_coupon, listeners_on_queues):
    """`count` orders with a coupon each whose steps have run; `stock` decides whether the stock step
    succeeds. Their step results were purged from the broker: the test delivers them itself."""

    def make(count: int, *, stock: int) -> list[tuple[Order, dict[str, StepOutcome]]]:
        user = make_user(balance=count * PRICE)
        product = make_product(price=PRICE, stock=stock)
        coupons = [give_coupon(user, rate="0.1").pk for _ in range(count)]
        orders = orders_with_tasks_purged(user_id=user.pk, product_id=product.pk, count=count, user_coupon_ids=coupons)
        done = [(order, run_every_step(order)) for order in orders]
        purge_tasks()
        return done

    return make
