"""The consistency monitor (apps.orders.monitor): §5 checked every minute over what changed recently,
on a real worker, while orders run; a finding is logged, kept and listed in admin."""

import logging
import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.utils import timezone

from apps.balance.models import TransactionKind
from apps.balance.services import balance_use
from apps.orders.models import InvariantViolation, Order
from apps.orders.monitor import consistency_monitor, ids_named, record_violations
from apps.orders.services import OrderLineInput, order_create, order_fail
from apps.orders.services.saga import UNDECIDED
from apps.orders.tasks import monitor_consistency_task
from apps.products.models import MovementKind, StockMovement
from eventbus.models import OutboxMessage
from tests.concurrency.conftest import all_decided, post_all
from tests.saga_worker import wait_for, wait_until_idle

pytestmark = pytest.mark.django_db(transaction=True)


def at_rest_now():
    """A moment at which every order settled until now is at rest: its compensations had their time."""
    return timezone.now() + timedelta(seconds=settings.CONSISTENCY_SETTLE_SECONDS + 1)


def place(client, product, quantity=1, coupon=None) -> int:
    body = {"items": [{"product_id": product.pk, "quantity": quantity}]}
    if coupon is not None:
        body["user_coupon_id"] = coupon.pk
    response = client.post("/api/v1/orders", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def test_a_ledger_row_deleted_behind_the_services_back_is_logged_kept_and_listed_in_admin(
    saga_worker, make_user, make_product, client_for, caplog
):
    # given: a completed order, which the monitor finds nothing wrong with
    user = make_user(balance=50_000)
    order_id = place(client_for(user), make_product(price=10_000))
    wait_for(lambda: Order.objects.get(pk=order_id).status == "COMPLETED", message="order completed")
    wait_until_idle()
    assert consistency_monitor(at_rest_now()).found == 0

    # when: its balance use disappears from the ledger
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM balance_balancetransaction WHERE order_id = %s AND kind = %s", [order_id, TransactionKind.USE]
        )
    with caplog.at_level(logging.ERROR, logger="apps.orders.monitor"):
        first = consistency_monitor(at_rest_now())
        again = consistency_monitor(at_rest_now())

    # then: both sides of the break are found, logged once with their ids, and kept
    expected = {
        f"user {user.pk}: balance 40000 != ledger 50000",
        f"completed order {order_id}: uses [], refunds [], total 10000",
    }
    assert (first.found, first.new, again.found, again.new) == (2, 2, 2, 0)
    assert {row.description for row in InvariantViolation.objects.all()} == expected
    logged = [record.msg for record in caplog.records if record.name == "apps.orders.monitor"]  # structlog's events
    assert {line["violation"] for line in logged} == expected
    assert all(line["event"] == "invariant_violated" for line in logged)
    by_order = next(line for line in logged if "order" in line["violation"])
    by_user = next(line for line in logged if "user" in line["violation"])
    assert (by_order["order_id"], by_order["correlation_id"], by_user["user_id"]) == (
        order_id,
        f"order-{order_id}",
        user.pk,
    )
    assert {record.levelname for record in caplog.records if record.name == "apps.orders.monitor"} == {"ERROR"}
    kept = InvariantViolation.objects.get(order_id=order_id)
    assert (kept.times_seen, kept.resolved_at) == (2, None)
    assert "\nsaga_invariant_violations 2.0\n" in Client().get("/metrics").content.decode()

    # and an operator sees them in admin, opens the order, and marks them resolved (in admin's history)
    staff = Client()
    staff.force_login(get_user_model().objects.create_superuser(username="operator", email="", password=None))
    listing = staff.get("/admin/orders/invariantviolation/?state=open").content.decode()
    assert all(description in listing for description in expected)
    assert f"/admin/orders/order/{order_id}/change/" in listing
    staff.post(
        "/admin/orders/invariantviolation/",
        {"action": "mark_resolved", "_selected_action": [kept.pk]},
    )
    kept.refresh_from_db()
    assert kept.resolved_at is not None and kept.resolved_by
    assert LogEntry.objects.filter(object_id=str(kept.pk), change_message="Marked resolved.").exists()

    # and the monitor, still finding it, opens it again
    assert consistency_monitor(at_rest_now()).new == 1
    assert InvariantViolation.objects.filter(order_id=order_id, resolved_at=None).count() == 1


def test_the_task_reports_what_it_checked(make_user, make_product):
    user = make_user(balance=50_000)
    order_create(user_id=user.pk, lines=[OrderLineInput(make_product().pk, 1)])

    assert monitor_consistency_task.apply().get() == {"orders": 1, "found": 0, "new": 0}


def test_an_order_in_flight_is_left_alone_until_its_deadline_has_passed(make_user, make_product):
    user = make_user(balance=50_000)
    order = order_create(user_id=user.pk, lines=[OrderLineInput(make_product().pk, 1)])

    assert consistency_monitor().found == 0

    Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - timedelta(hours=1))
    consistency_monitor()
    assert InvariantViolation.objects.get().description == f"order {order.pk} is still CREATED"


def test_a_failed_order_is_judged_once_its_compensations_had_their_time(make_user, make_product):
    # given: an order failed a moment ago, its refund not run yet (no worker here)
    user = make_user(balance=50_000)
    order = order_create(user_id=user.pk, lines=[OrderLineInput(make_product().pk, 1)])
    balance_use(order_id=order.pk, user_id=user.pk, amount=order.total_price)
    order_fail(order_id=order.pk, reason="canceled by the customer", from_statuses=UNDECIDED)

    # when its listeners have run, yet refunded nothing (a defect)
    OutboxMessage.objects.filter(order_id=order.pk).update(handled_at=timezone.now())

    # then: just settled it is nothing yet; left unrefunded past the settle time it is found
    assert consistency_monitor().found == 0
    assert consistency_monitor(at_rest_now()).found == 1
    assert InvariantViolation.objects.get().description == f"failed order {order.pk}: uses [10000] but refunds []"


def test_a_burst_of_orders_checked_while_they_run_finds_nothing(
    saga_worker, make_user, make_product, give_coupon, client_for
):
    # given: 24 orders at once over 3 products; a third of the customers cannot pay, some hold coupons
    products = [make_product(price=10_000, stock=10) for _ in range(3)]
    users = [make_user(balance=10_000 if n % 3 else 5_000) for n in range(24)]
    bodies = []
    for n, user in enumerate(users):
        body = {"items": [{"product_id": products[n % 3].pk, "quantity": 1}]}
        if n % 4 == 0:
            body["user_coupon_id"] = give_coupon(user, rate="0.1").pk
        bodies.append(body)
    findings, done = [], threading.Event()

    def monitor_while_orders_run():
        while not done.is_set():
            findings.append(consistency_monitor().found)
        connection.close()

    watcher = threading.Thread(target=monitor_while_orders_run)
    watcher.start()

    # when
    try:
        responses = post_all([client_for(user) for user in users], "/api/v1/orders", bodies)
        orders = all_decided([response.json()["id"] for response in responses])
        wait_until_idle()
    finally:
        done.set()
        watcher.join()

    # then: nothing was found while they ran, nor once every order is at rest
    assert {order.status for order in orders} == {"COMPLETED", "FAILED"}
    assert len(findings) >= 2 and set(findings) == {0}, findings
    assert consistency_monitor(at_rest_now()).found == 0
    assert not InvariantViolation.objects.exists()
    assert StockMovement.objects.filter(kind=MovementKind.RESTORE).count() == 8  # the failed orders gave back


def test_a_finding_names_its_ids():
    assert ids_named("user 3: balance 5 != ledger 7") == {"user_id": 3}
    assert ids_named("completed order 12 took 1 units, ordered 2 of product 4") == {"order_id": 12, "product_id": 4}
    assert ids_named("coupon 9: 3 issued, counter 2, quantity 5") == {}


def test_a_finding_whose_figures_change_stays_one_open_row():
    now = timezone.now()
    assert record_violations(["product 3: stock 97 != ledger 95"], now) == ["product 3: stock 97 != ledger 95"]
    assert record_violations(["product 3: stock 96 != ledger 94"], now) == []

    kept = InvariantViolation.objects.get()
    assert (kept.description, kept.key, kept.times_seen) == (
        "product 3: stock 96 != ledger 94",
        "product 3: stock # != ledger #",
        2,
    )


def test_a_failed_order_whose_refund_waits_its_retry_is_not_judged_until_it_ran(make_user, make_product):
    # given an order failed long ago whose refund's task is still to run (a partner down, a backlog)
    user = make_user(balance=50_000)
    order = order_create(user_id=user.pk, lines=[OrderLineInput(make_product().pk, 1)])
    balance_use(order_id=order.pk, user_id=user.pk, amount=order.total_price)
    order_fail(order_id=order.pk, reason="canceled by the customer", from_statuses=UNDECIDED)
    assert OutboxMessage.objects.filter(order_id=order.pk, handled_at=None, listener__contains="refund").exists()

    # then it is in flight still; once its row is parked (given up on), what it did not do is found
    assert consistency_monitor(at_rest_now()).found == 0
    OutboxMessage.objects.filter(order_id=order.pk, handled_at=None).update(parked_at=timezone.now())
    assert consistency_monitor(at_rest_now()).found == 1
