from collections import Counter

from apps.balance.models import Balance, BalanceTransaction
from apps.coupons.models import UserCoupon
from apps.dataplatform.models import Delivery
from apps.orders.models import Order
from apps.payments.models import Payment
from apps.products.models import Stock, StockMovement
from apps.products.rank import rank_top
from tests.saga_worker import wait_for, wait_until_idle


def settled(order_id: int, status: str) -> Order:
    """Wait until the order reaches `status` and every task it set off has run."""
    wait_for(lambda: Order.objects.filter(pk=order_id, status=status).exists(), message=f"order {order_id} {status}")
    wait_until_idle()
    return Order.objects.get(pk=order_id)


def finished(order_id: int) -> Order:
    """Wait until the order is COMPLETED or FAILED and every task it set off has run."""
    wait_for(
        lambda: Order.objects.filter(pk=order_id, status__in=("COMPLETED", "FAILED")).exists(),
        message=f"order {order_id} decided",
    )
    wait_until_idle()
    return Order.objects.get(pk=order_id)


def side_effects() -> dict:
    """Everything the saga can change, to compare before and after a repeat."""
    return {
        "orders": sorted(Order.objects.values_list("pk", "status", "failure_reason")),
        "balances": sorted(Balance.objects.values_list("user_id", "amount")),
        "ledger": BalanceTransaction.objects.count(),
        "stock": sorted(Stock.objects.values_list("product_id", "quantity")),
        "movements": StockMovement.objects.count(),
        "coupons": sorted(UserCoupon.objects.values_list("pk", "status", "used_by_order_id")),
        "payments": sorted(Payment.objects.values_list("order_id", "status")),
        "deliveries": sorted(Delivery.objects.values_list("order_id", "event_type", "status")),
        "rank": rank_top(),
    }


def event_counts(events) -> Counter:
    return Counter(type(event).__name__ for event in events)
