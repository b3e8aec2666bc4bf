"""apps.orders.consistency: the invariants of docs/design.md §5 gathered from every app's invariants.py.

The orders are brought to their end through the saga's own services, each step and compensation called
directly; then each invariant is broken behind the services' back and the collector must name it."""

from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.balance.models import Balance, BalanceTransaction, TransactionKind
from apps.balance.services import balance_refund, balance_use
from apps.coupons.models import Coupon, UserCoupon, UserCouponStatus
from apps.coupons.services import coupon_restore, coupon_use
from apps.orders import consistency, facts
from apps.orders.consistency import order_evidence, order_facts, violations
from apps.orders.events import OrderFailed
from apps.orders.models import Order, OrderStatus
from apps.orders.services import OrderLineInput, order_cancel, order_complete, order_create, order_record_step
from apps.payments.models import Payment, PaymentStatus
from apps.payments.services import payment_cancel, payment_pay
from apps.products.models import Stock, StockMovement
from apps.products.services import StockLine, stock_deduct, stock_restore

pytestmark = pytest.mark.django_db

PRICE, UNITS = 10_000, 2


@pytest.fixture(autouse=True)
def approving_gateway(settings):
    settings.PAYMENT_LATENCY_MS = 0
    settings.PAYMENT_DECLINE_RATE = 0


@pytest.fixture
def order_ended(make_user, make_product, give_coupon):
    """An order with a coupon, run through every step and compensation the saga would run, to `status`:
    COMPLETED, FAILED (its balance step refused) or CANCELED (completed, then cancelled)."""

    def make(status: str = OrderStatus.COMPLETED) -> Order:
        user = make_user(balance=100_000 if status != OrderStatus.FAILED else 1_000)
        product = make_product(price=PRICE, stock=10)
        user_coupon = give_coupon(user, rate="0.1")
        order = order_create(user_id=user.pk, lines=[OrderLineInput(product.pk, UNITS)], user_coupon_id=user_coupon.pk)
        outcomes = {
            "balance": balance_use(order_id=order.pk, user_id=user.pk, amount=order.total_price),
            "coupon": coupon_use(order_id=order.pk, user_coupon_id=user_coupon.pk, user_id=user.pk),
            "stock": stock_deduct(order_id=order.pk, lines=[StockLine(product.pk, UNITS)]),
        }
        for step, outcome in outcomes.items():
            order_record_step(order_id=order.pk, step=step, succeeded=outcome.succeeded, reason=outcome.reason)
        if status != OrderStatus.FAILED:
            payment_pay(order_id=order.pk, user_id=user.pk, amount=order.total_price)
            order_complete(order_id=order.pk)
        if status == OrderStatus.CANCELED:
            order_cancel(order_id=order.pk)
            payment_cancel(order_id=order.pk, reason="canceled by the customer")
        if status != OrderStatus.COMPLETED:
            for give_back in (balance_refund, coupon_restore, stock_restore):
                give_back(order_id=order.pk)
        order.refresh_from_db()
        assert order.status == status
        return order

    return make


# --- a clean run ---------------------------------------------------------------------------------------


def test_orders_run_through_the_services_break_nothing(order_ended, published_events):
    for status in (OrderStatus.COMPLETED, OrderStatus.FAILED, OrderStatus.CANCELED):
        order_ended(status)

    assert violations(published_events) == []
    assert violations() == []  # the decisions counted from the event history instead


def test_the_checks_cost_the_same_queries_whatever_the_number_of_orders(order_ended):
    order_ended(OrderStatus.COMPLETED)
    with CaptureQueriesContext(connection) as one_order:
        violations()
    for status in (OrderStatus.COMPLETED, OrderStatus.FAILED, OrderStatus.CANCELED):
        order_ended(status)
    with CaptureQueriesContext(connection) as four_orders:
        violations()

    assert len(four_orders) == len(one_order)


def test_the_orders_app_tells_the_other_apps_its_statuses_as_it_stores_them():
    assert {facts.COMPLETED, facts.FAILED, facts.CANCELED} <= set(OrderStatus.values)


def test_the_facts_of_an_order_are_what_its_rows_say(order_ended):
    order = order_ended(OrderStatus.COMPLETED)

    fact = order_facts()[order.pk]

    assert (fact.status, fact.total_price, fact.user_coupon_id) == ("COMPLETED", 18_000, order.user_coupon_id)
    assert dict(fact.units) == {order.items.get().product_id: UNITS}
    assert set(fact.participants) == set(order.participants)
    assert fact.completed and fact.settled and not fact.given_back


def test_an_app_that_provides_invariants_takes_part(monkeypatch, order_ended, published_events):
    order = order_ended(OrderStatus.COMPLETED)
    seen = {}

    def check(scope):
        seen.update(scope.orders)
        return [f"order {order_id}: the extra app disagrees" for order_id in scope.orders]

    extra = (SimpleNamespace(label="extra"), SimpleNamespace(check=check, evidence=lambda order_id: {"rows": [1]}))
    installed = consistency.app_modules("invariants")
    monkeypatch.setattr(consistency, "app_modules", lambda name: (*installed, extra))

    assert violations(published_events) == [f"order {order.pk}: the extra app disagrees"]
    assert seen[order.pk].completed
    assert order_evidence(order.pk)["extra"] == {"rows": [1]}


# --- orders (§5.4, §5.5) -------------------------------------------------------------------------------


def test_an_order_never_decided_is_reported(make_user, make_product, published_events):
    user = make_user(balance=100_000)
    order = order_create(user_id=user.pk, lines=[OrderLineInput(make_product().pk, 1)])

    assert violations(published_events) == [f"order {order.pk} is still CREATED"]


def test_a_second_decision_is_reported_unless_decisions_are_left_out(order_ended, published_events):
    order = order_ended(OrderStatus.FAILED)
    again = OrderFailed(order_id=order.pk, user_id=order.user_id, user_coupon_id=None, reason="again")

    found = violations([*published_events, again])

    assert f"order {order.pk}: 0 OrderPaymentWaited, 2 OrderFailed, 0 OrderCanceled" in found
    assert f"failed order {order.pk}: 2 OrderFailed" in found
    assert violations([*published_events, again], decisions=False) == []


# --- balance (§5.1) ------------------------------------------------------------------------------------


def test_a_ledger_row_gone_is_reported_for_its_user_and_its_order(order_ended, published_events):
    order = order_ended(OrderStatus.COMPLETED)
    balance = Balance.objects.get(user_id=order.user_id).amount
    BalanceTransaction.objects.filter(order_id=order.pk, kind=TransactionKind.USE).delete()

    found = violations(published_events)

    assert found == [
        f"user {order.user_id}: balance {balance} != ledger {balance + order.total_price}",
        f"completed order {order.pk}: uses [], refunds [], total {order.total_price}",
    ]


def test_a_second_use_of_an_order_is_reported(order_ended, published_events):
    order = order_ended(OrderStatus.COMPLETED)
    # The database refuses a second USE of an order; the check must hold without that constraint too.
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX balance_transaction_once_per_order")
    BalanceTransaction.objects.create(
        user_id=order.user_id, kind=TransactionKind.USE, amount=1, balance_after=0, order_id=order.pk
    )

    found = violations(published_events)

    assert f"order {order.pk}: ledger kinds {{'USE': 2}}" in found


def test_a_cancelled_order_not_refunded_is_reported(order_ended, published_events):
    order = order_ended(OrderStatus.CANCELED)
    BalanceTransaction.objects.filter(order_id=order.pk, kind=TransactionKind.REFUND).delete()
    Balance.objects.filter(user_id=order.user_id).update(amount=100_000 - order.total_price)

    found = violations(published_events)

    total = order.total_price
    assert found == [f"canceled order {order.pk}: uses [{total}], refunds [], total {total}"]


# --- stock (§5.2) --------------------------------------------------------------------------------------


def test_a_stock_changed_behind_the_ledger_is_reported(order_ended, published_events):
    order = order_ended(OrderStatus.COMPLETED)
    product_id = order.items.get().product_id
    Stock.objects.filter(product_id=product_id).update(quantity=5)

    found = violations(published_events)

    assert found == [
        f"product {product_id}: stock 5 != ledger {10 - UNITS}",
        f"product {product_id}: stock 5 != added − sold − held = {10 - UNITS}",
    ]


def test_a_failed_order_still_holding_its_units_is_reported(order_ended, published_events):
    order = order_ended(OrderStatus.FAILED)
    product_id = order.items.get().product_id
    restored = StockMovement.objects.get(order_id=order.pk, kind="RESTORE")
    restored.delete()
    Stock.objects.filter(product_id=product_id).update(quantity=10 - UNITS)

    found = violations(published_events)

    assert f"failed order {order.pk} still holds {UNITS} units" in found
    assert f"product {product_id}: stock {10 - UNITS} != added − sold − held = 10" in found


# --- coupons (§5.3) ------------------------------------------------------------------------------------


def test_a_coupon_marked_used_without_its_order_is_reported(make_user, give_coupon, published_events):
    user_coupon = give_coupon(make_user())
    UserCoupon.objects.filter(pk=user_coupon.pk).update(status=UserCouponStatus.USED, used_by_order_id=999_999)

    assert violations(published_events) == [f"user coupon {user_coupon.pk} is USED by order 999999, live orders: none"]


def test_a_coupon_held_by_two_live_orders_is_reported(order_ended, published_events):
    first, second = order_ended(OrderStatus.COMPLETED), order_ended(OrderStatus.COMPLETED)
    Order.objects.filter(pk=second.pk).update(user_coupon_id=first.user_coupon_id)

    found = violations(published_events)

    both = f"order {first.pk}, order {second.pk}"
    assert f"user coupon {first.user_coupon_id} used by 2 live orders: {both}" in found
    assert f"user coupon {second.user_coupon_id} is USED by order {second.pk}, live orders: none" in found


def test_a_coupon_counter_that_does_not_count_is_reported(give_coupon, make_user, published_events):
    user_coupon = give_coupon(make_user(), quantity=3)
    Coupon.objects.filter(pk=user_coupon.coupon_id).update(issued_count=2)

    assert violations(published_events) == [f"coupon {user_coupon.coupon_id}: 1 issued, counter 2, quantity 3"]


# --- payments ------------------------------------------------------------------------------------------


def test_a_payment_of_another_amount_is_reported(order_ended, published_events):
    order = order_ended(OrderStatus.COMPLETED)
    payment = Payment.objects.get(order_id=order.pk)
    Payment.objects.filter(pk=payment.pk).update(amount=order.total_price + 1)

    assert violations(published_events) == [
        f"payment {payment.pk} of order {order.pk}: amount {order.total_price + 1} != total {order.total_price}"
    ]


def test_a_payment_that_does_not_follow_its_order_is_reported(order_ended, published_events):
    order = order_ended(OrderStatus.CANCELED)
    payment = Payment.objects.get(order_id=order.pk)
    Payment.objects.filter(pk=payment.pk).update(status=PaymentStatus.COMPLETED)

    assert violations(published_events) == [f"payment {payment.pk} is COMPLETED but order {order.pk} is CANCELED"]


# --- evidence ------------------------------------------------------------------------------------------


def test_the_evidence_of_an_order_holds_each_apps_rows(order_ended):
    order = order_ended(OrderStatus.CANCELED)

    evidence = order_evidence(order.pk)

    assert [row["id"] for row in evidence["orders"]["order"]] == [order.pk]
    assert [row["quantity"] for row in evidence["orders"]["items"]] == [UNITS]
    assert {row["event_type"] for row in evidence["eventbus"]["outbox"]} >= {"OrderCreated", "OrderCanceled"}
    assert [row["kind"] for row in evidence["balance"]["ledger"]] == ["USE", "REFUND"]
    assert [row["kind"] for row in evidence["products"]["movements"]] == ["DEDUCT", "RESTORE"]
    assert [row["status"] for row in evidence["payments"]["payments"]] == ["CANCELED"]
    for app in ("balance", "products", "coupons"):
        assert [row["state"] for row in evidence[app]["steps"]] == ["COMPENSATED"]
    assert evidence["coupons"]["user_coupons"] == []  # given back: no longer used by the order
    assert evidence["dataplatform"]["deliveries"] == []  # its listener did not run here


def test_the_evidence_names_each_installed_app_that_has_some():
    assert {"orders", "eventbus", "balance", "products", "coupons", "payments", "dataplatform"} <= set(
        order_evidence(1)
    )
