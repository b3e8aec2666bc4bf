"""The payments app's part of docs/design.md §5 (payments follow their orders), and what its table says
of an order.

Found by apps.orders.consistency through common.app_hooks, like every app's invariants.py."""

from apps.orders.facts import OrderFacts, Scope, at_rest, of_orders
from apps.payments.models import Payment, PaymentStatus


def check(scope: Scope) -> list[str]:
    """A payment's amount is its order's total; it is COMPLETED exactly when its order is, and CANCELED
    when its order is (judged once the order is at rest, unless the run has settled)."""
    orders = scope.orders
    payments = Payment.objects.all()
    if not scope.everything:
        orders = at_rest(orders)
        payments = of_orders(payments, orders)
    found = []
    for payment_id, order_id, amount, status in payments.values_list("pk", "order_id", "amount", "status"):
        if not scope.everything and order_id not in orders:
            continue
        order = orders.get(order_id)
        if order is None:
            found.append(f"payment {payment_id} is for order {order_id}, which does not exist")
        elif amount != order.total_price:
            found.append(f"payment {payment_id} of order {order_id}: amount {amount} != total {order.total_price}")
        elif not _follows(status, order):
            found.append(f"payment {payment_id} is {status} but order {order_id} is {order.status}")
    return found


def _follows(status: str, order: OrderFacts) -> bool:
    if order.canceled:
        return status == PaymentStatus.CANCELED
    return (status == PaymentStatus.COMPLETED) == order.completed


def evidence(order_id: int) -> dict[str, list]:
    return {"payments": list(Payment.objects.filter(order_id=order_id).values())}
