"""The monolith reference of the benchmark (bench/monolith.py): one transaction per order, all or nothing.

Its orders are written without events, so docs/design.md §5 is checked without §5.4 (decision events)."""

import threading

import pytest
from django.db import connection

from apps.balance.models import Balance, BalanceTransaction, TransactionKind
from apps.coupons.models import UserCoupon, UserCouponStatus
from apps.orders.consistency import violations
from apps.orders.models import Order, OrderItem, OrderStatus
from apps.orders.services import OrderLineInput
from apps.payments.models import Payment, PaymentStatus
from apps.products.models import MovementKind, Stock, StockMovement
from bench.monolith import StepRefused, monolith_order_place
from eventbus.models import OutboxMessage

URL = "/bench/monolith/orders"
pytestmark = pytest.mark.urls("bench.urls")


def state() -> dict:
    """Everything an order could have written."""
    return {
        "orders": Order.objects.count(),
        "items": OrderItem.objects.count(),
        "payments": Payment.objects.count(),
        "ledger": list(BalanceTransaction.objects.order_by("pk").values_list("kind", "amount")),
        "balances": dict(Balance.objects.values_list("user_id", "amount")),
        "stock": dict(Stock.objects.values_list("product_id", "quantity")),
        "movements": StockMovement.objects.count(),
        "coupons": dict(UserCoupon.objects.values_list("pk", "status")),
        "outbox": OutboxMessage.objects.count(),
    }


@pytest.mark.django_db
def test_an_order_is_priced_paid_and_completed_in_the_request(make_user, make_product, give_coupon, client_for):
    # given
    user = make_user(balance=100_000)
    cheap, dear = make_product(price=5_000, stock=10), make_product(price=20_000, stock=5)
    coupon = give_coupon(user, rate="0.1")
    body = {
        "items": [{"product_id": dear.pk, "quantity": 1}, {"product_id": cheap.pk, "quantity": 2}],
        "user_coupon_id": coupon.pk,
    }

    # when
    answer = client_for(user).post(URL, body, format="json")

    # then: the answer is the completed order, and every effect is written
    assert answer.status_code == 201, answer.json()
    order = Order.objects.get(pk=answer.json()["id"])
    assert answer.json()["status"] == "COMPLETED"
    assert (order.status, order.gross_price, order.discount_price, order.total_price) == (
        OrderStatus.COMPLETED,
        30_000,
        3_000,
        27_000,
    )
    assert order.completed_at is not None
    assert Payment.objects.get(order_id=order.pk).status == PaymentStatus.COMPLETED
    assert Payment.objects.get(order_id=order.pk).amount == 27_000
    assert Balance.objects.get(user=user).amount == 73_000
    assert BalanceTransaction.objects.get(order_id=order.pk).kind == TransactionKind.USE
    assert Stock.objects.get(product=cheap).quantity == 8
    assert Stock.objects.get(product=dear).quantity == 4
    assert set(StockMovement.objects.filter(order_id=order.pk).values_list("product_id", "kind", "delta")) == {
        (cheap.pk, MovementKind.DEDUCT, -2),
        (dear.pk, MovementKind.DEDUCT, -1),
    }
    coupon.refresh_from_db()
    assert (coupon.status, coupon.used_by_order_id) == (UserCouponStatus.USED, order.pk)
    # a monolith publishes nothing
    assert OutboxMessage.objects.count() == 0
    assert violations(decisions=False) == []


@pytest.mark.django_db
def test_insufficient_stock_of_a_later_product_writes_nothing(make_user, make_product, give_coupon, client_for):
    # given: the first product (in id order) has stock, the second has too little
    user = make_user(balance=100_000)
    plenty, short = make_product(price=1_000, stock=10), make_product(price=1_000, stock=1)
    coupon = give_coupon(user)
    before = state()

    # when
    answer = client_for(user).post(
        URL,
        {"items": [{"product_id": plenty.pk, "quantity": 3}, {"product_id": short.pk, "quantity": 2}],
         "user_coupon_id": coupon.pk},
        format="json",
    )  # fmt: skip

    # then: refused by the stock step, and the balance's and coupon's use and the first product's deduction
    # were rolled back with the rest
    assert answer.status_code == 400
    assert answer.json()["code"] == "step_refused"
    assert answer.json()["details"] == {"step": "stock", "reason": f"insufficient stock for product {short.pk}"}
    assert state() == before
    assert violations(decisions=False) == []


@pytest.mark.django_db
def test_insufficient_balance_writes_nothing(make_user, make_product, client_for):
    # given
    user = make_user(balance=4_999)
    product = make_product(price=5_000, stock=10)
    before = state()

    # when
    answer = client_for(user).post(URL, {"items": [{"product_id": product.pk, "quantity": 1}]}, format="json")

    # then
    assert answer.status_code == 400
    assert answer.json()["code"] == "step_refused"
    assert answer.json()["details"] == {"step": "balance", "reason": "insufficient balance"}
    assert state() == before


@pytest.mark.django_db
def test_a_used_coupon_is_refused_and_nothing_is_written(make_user, make_product, give_coupon, client_for):
    # given: the coupon was used by an earlier order
    user = make_user(balance=100_000)
    product = make_product(price=5_000, stock=10)
    coupon = give_coupon(user)
    client = client_for(user)
    body = {"items": [{"product_id": product.pk, "quantity": 1}], "user_coupon_id": coupon.pk}
    assert client.post(URL, body, format="json").status_code == 201
    before = state()

    # when
    answer = client.post(URL, body, format="json")

    # then
    assert answer.status_code == 400
    assert answer.json()["code"] == "coupon_not_usable"
    assert state() == before
    assert violations(decisions=False) == []


@pytest.mark.django_db
def test_a_declined_payment_rolls_back_every_step_before_it(make_user, make_product, give_coupon, client_for, settings):
    # given: every other step succeeds, but the gateway declines
    settings.PAYMENT_DECLINE_RATE = 1.0
    user = make_user(balance=100_000)
    product = make_product(price=5_000, stock=10)
    coupon = give_coupon(user)
    before = state()

    # when
    answer = client_for(user).post(
        URL, {"items": [{"product_id": product.pk, "quantity": 1}], "user_coupon_id": coupon.pk}, format="json"
    )

    # then: coupon, stock and balance were used in the same transaction, so none of them stays used
    assert answer.status_code == 400
    assert answer.json()["code"] == "payment_declined"
    assert state() == before


@pytest.mark.django_db(transaction=True)
def test_racing_orders_for_the_last_units_sell_exactly_the_stock(make_user, make_product):
    # given: 8 buyers, 3 units
    product = make_product(price=1_000, stock=3)
    buyers = [make_user(balance=10_000) for _ in range(8)]
    barrier = threading.Barrier(len(buyers))
    outcomes: list[object] = [None] * len(buyers)

    def buy(index: int) -> None:
        try:
            connection.ensure_connection()
            barrier.wait(30)
            outcomes[index] = monolith_order_place(
                user_id=buyers[index].pk, lines=[OrderLineInput(product_id=product.pk, quantity=1)]
            )
        except Exception as error:
            outcomes[index] = error
        finally:
            connection.close()

    # when
    threads = [threading.Thread(target=buy, args=(index,)) for index in range(len(buyers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    # then: three orders completed, five refused for stock, and the books add up
    assert sum(isinstance(outcome, Order) for outcome in outcomes) == 3
    refusals = [outcome for outcome in outcomes if isinstance(outcome, StepRefused)]
    assert [refusal.details["step"] for refusal in refusals] == ["stock"] * 5
    assert Stock.objects.get(product=product).quantity == 0
    assert Order.objects.filter(status=OrderStatus.COMPLETED).count() == 3
    assert Payment.objects.filter(status=PaymentStatus.COMPLETED).count() == 3
    assert violations(decisions=False) == []
