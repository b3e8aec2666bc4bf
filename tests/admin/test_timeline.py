"""An order's timeline in admin (apps/orders/timeline.py): "what happened to order 42?", from every source,
oldest first, to the millisecond, each entry linked to the admin page of its row; the live process hash
beside the stored steps; filters for stuck and parked orders; an undone step reads UNDONE."""

import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.balance.models import BalanceTransaction
from apps.balance.services import balance_use
from apps.dataplatform.models import Delivery, DeliveryStatus
from apps.dataplatform.services import delivery_record
from apps.orders.models import Order
from apps.orders.process import process_key
from apps.orders.services import OrderLineInput, order_complete, order_create, orders_recover
from apps.orders.services.recovery import DEADLINE_REASON
from apps.orders.timeline import order_timeline
from apps.payments.models import Payment
from apps.payments.services import payment_pay
from apps.products.models import StockMovement
from apps.products.services import StockLine, stock_deduct
from common.participants import participant
from common.redis import redis_client
from eventbus.models import OutboxMessage
from tests.participants import record_every_step
from tests.saga.conftest import settled

pytestmark = pytest.mark.django_db(transaction=True)

PRICE = 10_000
MILLIS = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}")


@pytest.fixture
def operator_client(client, db):
    operator = get_user_model().objects.create_superuser(username="operator", email="", password=None)
    client.force_login(operator)
    return client


def timeline_page(client, order_id: int):
    page = client.get(reverse("admin:orders_order_timeline", args=[order_id]))
    assert page.status_code == 200
    return page


def whats(page) -> list[str]:
    return [entry.what for entry in page.context["timeline"].entries]


def entry_of(page, what: str):
    return next(entry for entry in page.context["timeline"].entries if entry.what == what)


def in_order(found: list[str], *expected: str) -> bool:
    """Each of `expected` is in `found`, in that order (others may come between)."""
    positions = [found.index(what) for what in expected]
    return positions == sorted(positions)


def assert_every_link_resolves(client, page) -> int:
    timeline = page.context["timeline"]
    urls = {link.url for link in timeline.related} | {link.url for e in timeline.entries for link in e.links}
    for url in urls:
        assert url in page.content.decode().replace("&amp;", "&"), url
        assert client.get(url).status_code == 200, url
    return len(urls)


def test_a_completed_orders_timeline_tells_its_saga_in_time_order_to_the_millisecond(
    saga_worker, operator_client, make_user, make_product, give_coupon, place_order
):
    # given an order with a coupon that went through its whole saga on a real worker
    user = make_user(balance=100_000)
    user_coupon = give_coupon(user, rate="0.1", name="Welcome")
    order_id = place_order(user, [(make_product(price=PRICE, stock=5, name="Kettle").pk, 2)], user_coupon.pk)
    settled(order_id, "COMPLETED")

    # when the operator opens its timeline
    page = timeline_page(operator_client, order_id)

    # then it is the saga, oldest first, each time to the millisecond in the site's time zone
    entries = page.context["timeline"].entries
    assert [entry.at for entry in entries] == sorted(entry.at for entry in entries)
    assert all(MILLIS.fullmatch(entry.at_text) for entry in entries)
    local = timezone.localtime(entries[0].at)
    assert entries[0].at_text == f"{local:%Y-%m-%d %H:%M:%S}.{local.microsecond // 1000:03d}"
    assert f'<td class="at">{entries[-1].at_text}</td>' in page.content.decode()
    found = whats(page)
    assert found[0] == "Order placed"
    assert in_order(
        found,
        "Order placed",
        "Balance step applied",
        "Decision: every step succeeded, waiting for payment",
        "Payment started at the gateway",
        "Payment paid",
        "Order completed",
        "Delivery of OrderCompleted to the data platform recorded",
        "Delivery kept locally: no DATA_PLATFORM_URL",
    )
    assert {
        "Coupon step applied",
        "Stock step applied",
        "Balance used: 18,000 won",
        "Stock deducted: 2 × Kettle",
    } <= set(found)
    assert {"Balance step reported SUCCESS", "Coupon step reported SUCCESS", "Stock step reported SUCCESS"} <= set(
        found
    )
    # the payment with its gateway reference, linked
    payment = Payment.objects.get(order_id=order_id)
    paid = entry_of(page, "Payment paid")
    assert payment.gateway_reference and f"gateway reference {payment.gateway_reference}" in paid.details
    assert reverse("admin:payments_payment_change", args=[payment.pk]) in {link.url for link in paid.links}
    # every listener's work, and where it came from
    assert "balance · use_balance_task" in {entry.source for entry in entries}
    assert any(what.startswith("record_step_result_task ran inline") for what in found)
    # links to the ledger row, the stock movement, the coupon, the payment and the delivery, all resolving
    links = {link.url for entry in entries for link in entry.links}
    ledger_row = BalanceTransaction.objects.get(order_id=order_id)
    movement = StockMovement.objects.get(order_id=order_id)
    delivery = Delivery.objects.get(order_id=order_id)
    assert {
        reverse("admin:balance_balancetransaction_change", args=[ledger_row.pk]),
        reverse("admin:products_stockmovement_change", args=[movement.pk]),
        reverse("admin:coupons_usercoupon_change", args=[user_coupon.pk]),
        reverse("admin:dataplatform_delivery_change", args=[delivery.pk]),
    } <= links
    assert assert_every_link_resolves(operator_client, page) > 20
    # and the order's page links to its rows in each admin, narrowed to the order
    ledger = operator_client.get(reverse("admin:balance_balancetransaction_changelist"), {"order_id__exact": order_id})
    assert [row.pk for row in ledger.context["cl"].result_list] == [ledger_row.pk]
    # a settled order shows its stored steps and the records, not Redis
    process = page.context["timeline"].process
    assert not process.live
    assert {(row.step, row.stored, row.record) for row in process.steps if row.concerned} == {
        ("balance", "SUCCESS", "APPLIED"),
        ("coupon", "SUCCESS", "APPLIED"),
        ("stock", "SUCCESS", "APPLIED"),
    }


def test_a_failed_orders_timeline_shows_the_rejected_step_the_undone_ones_and_the_compensations(
    saga_worker, operator_client, make_user, make_product, give_coupon, place_order
):
    # given an order its customer cannot pay for: coupon and stock take effect, then are undone
    user = make_user(balance=PRICE)
    user_coupon = give_coupon(user, rate="0.1")
    order_id = place_order(user, [(make_product(price=PRICE, stock=5, name="Toaster").pk, 2)], user_coupon.pk)
    settled(order_id, "FAILED")

    # when
    page = timeline_page(operator_client, order_id)

    # then the rejection with its reason, the decision, and each undo after it
    found = whats(page)
    rejected = entry_of(page, "Balance step rejected")
    assert "insufficient" in rejected.details.lower()
    assert in_order(found, "Balance step rejected", "Decision: a step failed, the order failed", "Stock step undone")
    assert in_order(found, "Stock step applied", "Decision: a step failed, the order failed", "Coupon step undone")
    assert in_order(found, "Stock deducted: 2 × Toaster", "Stock restored: 2 × Toaster")
    assert {"Compensation: stock restored", "Compensation: coupon given back"} <= set(found)
    assert "Compensation: balance refunded" not in found  # nothing was taken: nothing to give back
    failed = entry_of(page, "Decision: a step failed, the order failed")
    assert "balance step failed" in failed.details
    assert not any(what.startswith("Payment") for what in found)
    # the process table and the order's page read UNDONE for an undone step, never SUCCESS
    records = {row.step: row.record for row in page.context["timeline"].process.steps if row.concerned}
    assert records == {"balance": "REJECTED", "coupon": "UNDONE", "stock": "UNDONE"}
    change = operator_client.get(reverse("admin:orders_order_change", args=[order_id])).content.decode()
    assert "coupon: <strong>UNDONE</strong>" in change and "stock: <strong>UNDONE</strong>" in change
    assert "balance: <strong>FAILED</strong>" in change
    assert reverse("admin:orders_order_timeline", args=[order_id]) in change


def test_a_cancelled_completed_orders_timeline_shows_the_cancel_the_give_backs_and_the_operator(
    saga_worker, operator_client, make_user, make_product, give_coupon, place_order
):
    # given a completed order, then cancelled by an operator from admin
    user = make_user(balance=100_000)
    user_coupon = give_coupon(user, rate="0.1")
    order_id = place_order(user, [(make_product(price=PRICE, stock=5, name="Blender").pk, 1)], user_coupon.pk)
    settled(order_id, "COMPLETED")
    order_timeline(Order.objects.get(pk=order_id))  # content types cached: each count below is the selector's own
    with CaptureQueriesContext(connection) as completed_queries:
        order_timeline(Order.objects.get(pk=order_id))
    operator_client.post(
        reverse("admin:orders_order_changelist"), {"action": "cancel_orders", "_selected_action": [order_id]}
    )
    settled(order_id, "CANCELED")

    # when
    with CaptureQueriesContext(connection) as page_queries:
        page = timeline_page(operator_client, order_id)

    # then the cancel, the payment's cancel, each give-back, and the operator who did it
    found = whats(page)
    operator = entry_of(page, "Operator operator: Cancelled: now CANCELED.")
    assert operator.source == "admin"
    assert [link.url for link in operator.links] == [reverse("admin:orders_order_change", args=[order_id])]
    cancelled = "Completed order cancelled: everything it took is given back"
    # (admin's history notes an action once it is done: just after the cancel it made)
    assert in_order(found, "Order completed", cancelled, "Operator operator: Cancelled: now CANCELED.")
    assert "canceled by operator operator" in entry_of(page, cancelled).details
    for give_back in (
        "Payment cancelled at the gateway",
        "Compensation: balance refunded",
        "Compensation: coupon given back",
        "Compensation: stock restored",
        "Balance refunded: 9,000 won",
        "Stock restored: 1 × Blender",
        "Balance step undone",
        "Coupon step undone",
        "Stock step undone",
        "Delivery of OrderCanceled to the data platform recorded",
    ):
        assert in_order(found, cancelled, give_back), give_back
    assert assert_every_link_resolves(operator_client, page) > 25
    # a few queries whatever the order holds: the same for the cancelled order as for the completed one
    with CaptureQueriesContext(connection) as cancelled_queries:
        order_timeline(Order.objects.get(pk=order_id))
    assert len(cancelled_queries) == len(completed_queries) <= 10 + len(page.context["timeline"].process.steps)
    assert len(page.context["timeline"].entries) > 40 and len(page_queries) <= len(cancelled_queries) + 8


def test_a_running_order_shows_its_live_process_hash_beside_the_stored_steps_and_says_when_redis_lost_it(
    operator_client, make_user, make_product
):
    # given an order whose balance step ran and was recorded in the hash (inline, after its commit)
    user = make_user(balance=100_000)
    product = make_product(price=PRICE, stock=5)
    order = order_create(user_id=user.pk, lines=[OrderLineInput(product.pk, 1)])
    balance_use(order_id=order.pk, user_id=user.pk, amount=order.total_price)

    # when
    page = timeline_page(operator_client, order.pk)

    # then the live hash is beside the stored steps (none yet) and the participants' records
    process = page.context["timeline"].process
    assert process.live and not process.note
    rows = {row.step: (row.live, row.stored, row.record) for row in process.steps if row.concerned}
    assert rows == {"balance": ("SUCCESS", None, "APPLIED"), "stock": ("PENDING", None, "none yet")}
    assert f"live: Redis <code>order:{order.pk}:process</code>" in page.content.decode()

    # when Redis loses the hash
    redis_client().delete(process_key(order.pk))
    page = timeline_page(operator_client, order.pk)

    # then the page says so, and the records still tell what happened
    process = page.context["timeline"].process
    assert not process.live
    assert "Redis lost it" in process.note and "Redis lost it" in page.content.decode()
    assert {row.step: row.record for row in process.steps if row.concerned} == {
        "balance": "APPLIED",
        "stock": "none yet",
    }


def test_the_recovery_sweeps_actions_are_in_the_timeline(
    operator_client, make_user, make_product, settings, listeners_on_queues
):
    # given an order whose steps both ran while Redis lost their results, and one that nothing decided
    settings.SAGA_RECONCILE_AFTER_SECONDS = 1
    user = make_user(balance=100_000)
    product = make_product(price=PRICE, stock=5)
    rebuilt = order_create(user_id=user.pk, lines=[OrderLineInput(product.pk, 1)])
    balance_use(order_id=rebuilt.pk, user_id=user.pk, amount=rebuilt.total_price)
    stock_deduct(order_id=rebuilt.pk, lines=[StockLine(product.pk, 1)])
    abandoned = order_create(user_id=user.pk, lines=[OrderLineInput(product.pk, 1)])
    Order.objects.filter(pk=rebuilt.pk).update(created_at=timezone.now() - timedelta(seconds=2))
    Order.objects.filter(pk=abandoned.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.SAGA_DEADLINE_SECONDS + 1)
    )

    # when the sweep runs
    assert orders_recover() == {"reconciled": 1, "failed": 1}

    # then each order's timeline says what the sweep did
    decided = entry_of(
        timeline_page(operator_client, rebuilt.pk),
        "Recovery sweep: decided from the step records, every step succeeded",
    )
    assert decided.source == "orders · OrderPaymentWaited (recovery sweep)"
    failed = entry_of(
        timeline_page(operator_client, abandoned.pk), "Recovery sweep: failed at the saga's deadline, undecided"
    )
    assert failed.details == f"reason: {DEADLINE_REASON}"
    assert failed.source == "orders · OrderFailed (recovery sweep)"


def test_filters_find_orders_stuck_past_a_threshold_and_parked_ones_and_the_operators_resend_is_in_the_timeline(
    operator_client, make_user, make_product
):
    # given an order still CREATED after 2 minutes, one PAYMENT_WAITING after 10, a completed old one
    user = make_user(balance=100_000)
    product = make_product(price=PRICE, stock=10)

    def placed(minutes_ago: float) -> Order:
        order = order_create(user_id=user.pk, lines=[OrderLineInput(product.pk, 1)])
        Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - timedelta(minutes=minutes_ago))
        return order

    creating, waiting, completed, fresh = placed(2), placed(10), placed(90), placed(0)
    record_every_step(waiting)
    record_every_step(completed)
    Order.objects.filter(pk=completed.pk).update(status="COMPLETED")
    changelist = reverse("admin:orders_order_changelist")

    def found(attention: str) -> set[int]:
        response = operator_client.get(changelist, {"attention": attention})
        assert response.status_code == 200
        return {order.pk for order in response.context["cl"].result_list}

    # then each threshold finds the unsettled orders older than it, never a settled or a fresh one
    assert found("stuck_1m") == {creating.pk, waiting.pk}
    assert found("stuck_5m") == {waiting.pk}
    assert found("stuck_1h") == set()
    assert found("stuck") == {creating.pk, waiting.pk}  # past the saga's deadline (60 s)
    assert fresh.pk not in found("stuck_1m") and found("parked") == set()
    assert 'href="?attention=stuck_5m"' in operator_client.get(changelist).content.decode()

    # when a listener of the fresh order is parked
    row = OutboxMessage.objects.filter(order_id=fresh.pk).order_by("pk").first()
    OutboxMessage.objects.filter(pk=row.pk).update(parked_at=timezone.now(), last_error="DataError: boom")

    # then the parked filter finds it, and its timeline shows the parked listener with its error
    assert found("parked") == {fresh.pk}
    name = row.listener.rsplit(".", 1)[-1]
    parked = entry_of(timeline_page(operator_client, fresh.pk), f"{name} PARKED: waits for an operator")
    assert "DataError: boom" in parked.details

    # when the operator sends it again from the outbox's admin
    operator_client.post(
        reverse("admin:eventbus_outboxmessage_changelist"), {"action": "send_again", "_selected_action": [row.pk]}
    )

    # then admin's history has it, and so has the order's timeline, linked to the row
    assert LogEntry.objects.filter(object_id=str(row.pk), change_message="Sent again.").exists()
    page = timeline_page(operator_client, fresh.pk)
    resent = entry_of(page, "Operator operator: Sent again.")
    assert [link.url for link in resent.links] == [reverse("admin:eventbus_outboxmessage_change", args=[row.pk])]
    assert found("parked") == set()


def test_the_changelist_and_the_change_page_link_to_the_timeline_and_the_related_rows(
    operator_client, make_user, make_product
):
    # given
    user = make_user(balance=100_000)
    order = order_create(user_id=user.pk, lines=[OrderLineInput(make_product(price=PRICE).pk, 1)])
    timeline = reverse("admin:orders_order_timeline", args=[order.pk])

    # when
    listed = operator_client.get(reverse("admin:orders_order_changelist")).content.decode()
    change = operator_client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()

    # then
    assert f'href="{timeline}"' in listed and f'href="{timeline}"' in change
    for label in (
        "ledger rows",
        "stock movements",
        "payment",
        "deliveries",
        "outbox rows",
        "events",
        "stock step record",
    ):
        assert f">{label}</a>" in change, label
    step_records = reverse(f"admin:{participant('balance').record._meta.label_lower.replace('.', '_')}_changelist")
    assert f'href="{step_records}?order_id__exact={order.pk}"' in change
    assert operator_client.get(reverse("admin:orders_order_timeline", args=[order.pk + 1000])).status_code == 302


def test_a_customer_cannot_read_a_timeline(client, make_user, make_product):
    user = make_user(balance=100_000)
    order = order_create(user_id=user.pk, lines=[OrderLineInput(make_product(price=PRICE).pk, 1)])
    client.force_login(user)

    response = client.get(reverse("admin:orders_order_timeline", args=[order.pk]))

    assert response.status_code == 302 and response.url.startswith(reverse("admin:login"))


def test_every_operator_action_is_kept_in_admins_history_and_an_orders_rows_actions_in_its_timeline(
    operator_client, make_user, make_product
):
    # given a completed order whose delivery to the data platform is dead
    user = make_user(balance=100_000)
    kettle = make_product(price=PRICE, stock=5, name="Kettle")
    order = order_create(user_id=user.pk, lines=[OrderLineInput(kettle.pk, 1)])
    record_every_step(order)
    payment_pay(order_id=order.pk, user_id=user.pk, amount=order.total_price)
    order_complete(order_id=order.pk)
    delivery = delivery_record(order_id=order.pk, payload={"order_id": order.pk})
    Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.DEAD, attempts=8, last_error="HTTP 503")

    # when an operator sends it again, adds stock, adds a product and a coupon
    operator_client.post(
        reverse("admin:dataplatform_delivery_changelist"), {"action": "send_again", "_selected_action": [delivery.pk]}
    )
    operator_client.post(
        reverse("admin:products_product_changelist"),
        {"action": "add_stock", "_selected_action": [kettle.pk], "apply": "1", "quantity": 4},
    )
    operator_client.post(
        reverse("admin:products_product_add"),
        {"name": "Mixer", "price": 45_000, "status": "SELLING", "initial_stock": 1},
    )
    expires_at = timezone.localtime() + timedelta(days=7)
    operator_client.post(
        reverse("admin:coupons_coupon_add"),
        {
            "name": "Spring",
            "discount_rate": "0.25",
            "quantity": 100,
            "expires_at_0": expires_at.date(),
            "expires_at_1": "12:00:00",
        },
    )

    # then admin's history has each of them
    logged = {(log.content_type.model, log.object_repr, log.get_change_message()) for log in LogEntry.objects.all()}
    assert logged == {
        ("delivery", f"OrderCompleted of order {order.pk} → data platform: DEAD", "Sent again"),
        ("product", "Kettle", "Added 4 units."),
        ("product", "Mixer", "Added."),
        ("coupon", "Spring (25%)", "Added."),
    }
    # and the order's timeline shows what was done to its delivery, linked to it
    resent = entry_of(timeline_page(operator_client, order.pk), "Operator operator: Sent again")
    assert [link.url for link in resent.links] == [reverse("admin:dataplatform_delivery_change", args=[delivery.pk])]


def test_the_timeline_prints_as_text_for_a_terminal(saga_worker, make_user, make_product, place_order):
    from io import StringIO

    from django.core.management import CommandError, call_command

    order_id = place_order(make_user(balance=100_000), [(make_product(price=PRICE, name="Lamp").pk, 1)])
    settled(order_id, "COMPLETED")
    out = StringIO()

    call_command("order_timeline", str(order_id), stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0] == f"order {order_id}: COMPLETED"
    times = [line[:23] for line in lines[1:]]
    assert all(MILLIS.fullmatch(at) for at in times) and times == sorted(times)
    assert in_order(
        [line[25:].split("  (")[0] for line in lines[1:]], "Order placed", "Payment paid", "Order completed"
    )
    with pytest.raises(CommandError, match="no order 0"):
        call_command("order_timeline", "0")
