"""The reference the saga is measured against: the same order done the pre-event way.

One request, one database transaction: price the items, use the coupon, deduct the stock, use the
balance, pay through the gateway and save the order COMPLETED, all or nothing. It works on the apps'
own models and ledgers (a monolith has no app boundaries to respect) and writes only what a monolith
would: the order and its items, the ledgers (balance use, stock movements), the used coupon and the
payment; no step records, no events, no outbox. It lives under bench/ only: it is not part of the shop.
"""

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.balance.models import Balance, BalanceTransaction, TransactionKind
from apps.coupons.errors import CouponNotUsable
from apps.coupons.models import Coupon, UserCoupon, UserCouponStatus
from apps.orders.models import Order, OrderItem, OrderStatus
from apps.orders.process import STEPS, SUCCESS
from apps.orders.services import OrderLineInput
from apps.orders.services.creation import order_price
from apps.payments.gateway import get_gateway
from apps.payments.models import Payment, PaymentStatus
from apps.products.models import MovementKind, Stock, StockMovement
from common.errors import ApplicationError

ALL_DONE = dict.fromkeys(STEPS, SUCCESS)


class InsufficientStock(ApplicationError):
    code = "insufficient_stock"


class InsufficientBalance(ApplicationError):
    code = "insufficient_balance"


class PaymentDeclined(ApplicationError):
    code = "payment_declined"


def _use_coupon(*, order: Order, user_coupon_id: int, now) -> None:
    unexpired = Coupon.objects.filter(expires_at__gt=now).values("pk")
    used = UserCoupon.objects.filter(
        pk=user_coupon_id, user_id=order.user_id, status=UserCouponStatus.UNUSED, coupon_id__in=unexpired
    ).update(status=UserCouponStatus.USED, used_by_order_id=order.pk, used_at=now)
    if not used:
        raise CouponNotUsable("This coupon can no longer be used.")


def _deduct_stock(*, order: Order, quantities: dict[int, int]) -> None:
    for product_id, quantity in quantities.items():  # in product-id order: no deadlock between orders
        if not Stock.objects.filter(product_id=product_id, quantity__gte=quantity).update(
            quantity=F("quantity") - quantity
        ):
            raise InsufficientStock(f"Product {product_id} has fewer than {quantity} units left.")
    StockMovement.objects.bulk_create(
        StockMovement(product_id=product_id, kind=MovementKind.DEDUCT, delta=-quantity, order_id=order.pk)
        for product_id, quantity in quantities.items()
    )


def _use_balance(*, order: Order) -> None:
    amount = order.total_price
    if not Balance.objects.filter(user_id=order.user_id, amount__gte=amount).update(amount=F("amount") - amount):
        raise InsufficientBalance("The balance is too low for this order.")
    balance_after = Balance.objects.values_list("amount", flat=True).get(user_id=order.user_id)
    BalanceTransaction.objects.create(
        user_id=order.user_id, kind=TransactionKind.USE, amount=amount, order_id=order.pk, balance_after=balance_after
    )


def _pay(*, order: Order, now) -> Payment:
    result = get_gateway().pay(idempotency_key=f"monolith-order-{order.pk}", amount=order.total_price)
    if not result.approved:
        raise PaymentDeclined(f"The payment was declined: {result.reason}")
    return Payment.objects.create(
        order_id=order.pk,
        user_id=order.user_id,
        amount=order.total_price,
        status=PaymentStatus.COMPLETED,
        gateway_reference=result.reference,
        paid_at=now,
    )


@transaction.atomic
def monolith_order_place(*, user_id: int, lines: list[OrderLineInput], user_coupon_id: int | None = None) -> Order:
    """Place and pay an order in one transaction; any refusal raises and leaves nothing written. The
    order carries its items and payment (`created_items`, `payment`) for the answer."""
    priced = order_price(user_id=user_id, lines=lines, user_coupon_id=user_coupon_id)
    now = timezone.now()
    order = Order.objects.create(
        user_id=user_id,
        user_coupon_id=user_coupon_id,
        status=OrderStatus.COMPLETED,
        gross_price=priced.gross_price,
        discount_price=priced.discount_price,
        total_price=priced.total_price,
        steps=ALL_DONE,
        decided_at=now,
        completed_at=now,
    )
    order.created_items = OrderItem.objects.bulk_create(
        OrderItem(order=order, product_id=pk, quantity=quantity, unit_price=priced.unit_prices[pk])
        for pk, quantity in priced.quantities.items()
    )
    # Rows are locked in one order by every request (coupon, stock by product id, balance), so two
    # monolith orders wait for each other but never deadlock.
    if user_coupon_id is not None:
        _use_coupon(order=order, user_coupon_id=user_coupon_id, now=now)
    _deduct_stock(order=order, quantities=priced.quantities)
    _use_balance(order=order)
    order.payment = _pay(order=order, now=now)
    return order
