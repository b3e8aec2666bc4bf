"""The invariants of docs/design.md §5, checked from the database after a run has settled.

Used by the tests and by the chaos run. Decisions (§5.4) are counted from the events a test saw
published, or else from the outbox, which holds every event that has a listener."""

from collections import Counter, defaultdict

from django.db.models import Sum

from apps.balance.models import Balance, BalanceTransaction, TransactionKind
from apps.coupons.models import Coupon, UserCoupon, UserCouponStatus
from apps.orders.events import OrderCanceled, OrderFailed, OrderPaymentWaited
from apps.orders.models import Order, OrderItem, OrderStatus
from apps.payments.models import Payment, PaymentStatus
from apps.products.models import MovementKind, Stock, StockMovement
from eventbus.models import OutboxMessage

TERMINAL = (OrderStatus.COMPLETED, OrderStatus.FAILED, OrderStatus.CANCELED)
# Orders that hold nothing once their compensations have run.
GIVEN_BACK = (OrderStatus.FAILED, OrderStatus.CANCELED)


def violations(published_events=None, *, decisions: bool = True) -> list[str]:
    """Every invariant broken, as readable lines. `decisions=False` leaves out §5.4 (one decision event
    per order), for orders written without events (the monolith reference in bench/)."""
    found: list[str] = []
    orders = {order.pk: order for order in Order.objects.all()}
    found += [f"order {pk} is still {o.status}" for pk, o in orders.items() if o.status not in TERMINAL]
    found += _money(orders)
    found += _stock(orders)
    found += _coupons(orders)
    found += _payments(orders)
    if decisions:
        found += _decisions(orders, _decision_events(published_events))
    return found


def _money(orders) -> list[str]:
    found = []
    signed = defaultdict(int)
    for txn in BalanceTransaction.objects.all():
        signed[txn.user_id] += txn.signed_amount
    for balance in Balance.objects.all():
        if balance.amount < 0:
            found.append(f"user {balance.user_id} has a negative balance")
        if balance.amount != signed[balance.user_id]:
            found.append(f"user {balance.user_id}: balance {balance.amount} != ledger {signed[balance.user_id]}")
    by_order = defaultdict(list)
    for txn in BalanceTransaction.objects.exclude(order_id=None):
        by_order[txn.order_id].append(txn)
    for order_id, order in orders.items():
        kinds = Counter(txn.kind for txn in by_order[order_id])
        uses = [txn.amount for txn in by_order[order_id] if txn.kind == TransactionKind.USE]
        refunds = [txn.amount for txn in by_order[order_id] if txn.kind == TransactionKind.REFUND]
        if order.status == OrderStatus.COMPLETED and (uses != [order.total_price] or refunds):
            found.append(f"completed order {order_id}: uses {uses}, refunds {refunds}, total {order.total_price}")
        if order.status == OrderStatus.FAILED and uses != refunds:
            found.append(f"failed order {order_id}: uses {uses} but refunds {refunds}")
        if order.status == OrderStatus.CANCELED and (uses != [order.total_price] or refunds != uses):
            found.append(f"canceled order {order_id}: uses {uses}, refunds {refunds}, total {order.total_price}")
        if kinds[TransactionKind.USE] > 1 or kinds[TransactionKind.REFUND] > 1:
            found.append(f"order {order_id}: ledger kinds {dict(kinds)}")
    return found


def _stock(orders) -> list[str]:
    found = []
    ledger = dict(StockMovement.objects.values_list("product_id").annotate(total=Sum("delta")))
    added = dict(
        StockMovement.objects.filter(kind=MovementKind.ADD).values_list("product_id").annotate(total=Sum("delta"))
    )
    sold = defaultdict(int)
    for item in OrderItem.objects.filter(order__status=OrderStatus.COMPLETED):
        sold[item.product_id] += item.quantity
    for stock in Stock.objects.all():
        if stock.quantity < 0:
            found.append(f"product {stock.product_id} has negative stock")
        if stock.quantity != ledger.get(stock.product_id, 0):
            found.append(
                f"product {stock.product_id}: stock {stock.quantity} != ledger {ledger.get(stock.product_id, 0)}"
            )
        expected = added.get(stock.product_id, 0) - sold[stock.product_id]
        if stock.quantity != expected:
            found.append(f"product {stock.product_id}: stock {stock.quantity} != added − sold = {expected}")
    net_by_order = dict(
        StockMovement.objects.exclude(order_id=None).values_list("order_id").annotate(total=Sum("delta"))
    )
    for order_id, order in orders.items():
        units = sum(item.quantity for item in order.items.all())
        net = net_by_order.get(order_id, 0)
        if order.status in GIVEN_BACK and net != 0:
            found.append(f"{order.status.lower()} order {order_id} still holds {-net} units")
        if order.status == OrderStatus.COMPLETED and net != -units:
            found.append(f"completed order {order_id} took {-net} units, ordered {units}")
    return found


def _coupons(orders) -> list[str]:
    found = []
    for coupon in Coupon.objects.all():
        issued = UserCoupon.objects.filter(coupon=coupon).count()
        if issued != coupon.issued_count or issued > coupon.quantity:
            found.append(
                f"coupon {coupon.pk}: {issued} issued, counter {coupon.issued_count}, quantity {coupon.quantity}"
            )
    for user_coupon in UserCoupon.objects.all():
        holders = [o for o in orders.values() if o.user_coupon_id == user_coupon.pk and o.status not in GIVEN_BACK]
        if len(holders) > 1:
            found.append(f"user coupon {user_coupon.pk} used by {len(holders)} live orders")
        used = user_coupon.status == UserCouponStatus.USED
        if used != bool(holders) or (used and holders[0].pk != user_coupon.used_by_order_id):
            found.append(f"user coupon {user_coupon.pk} is {user_coupon.status}, live orders {[o.pk for o in holders]}")
    return found


def _payments(orders) -> list[str]:
    found = []
    for payment in Payment.objects.all():
        order = orders.get(payment.order_id)
        if order is None or payment.amount != order.total_price:
            found.append(f"payment {payment.pk} does not match its order")
        elif (payment.status == PaymentStatus.COMPLETED) != (order.status == OrderStatus.COMPLETED):
            found.append(f"payment {payment.pk} is {payment.status} but order {order.pk} is {order.status}")
        elif order.status == OrderStatus.CANCELED and payment.status != PaymentStatus.CANCELED:
            found.append(f"payment {payment.pk} is {payment.status} but order {order.pk} is CANCELED")
    return found


def _decision_events(published_events) -> list[tuple[str, int]]:
    """(event type, order id) of every OrderPaymentWaited, OrderFailed and OrderCanceled, each event once."""
    types = (OrderPaymentWaited.event_type(), OrderFailed.event_type(), OrderCanceled.event_type())
    if published_events is not None:
        return [(type(e).__name__, e.order_id) for e in published_events if type(e).__name__ in types]
    rows = OutboxMessage.objects.filter(event_type__in=types).values_list("event_type", "order_id", "event_id")
    return [(event_type, order_id) for event_type, order_id, _ in set(rows)]


def _decisions(orders, decisions: list[tuple[str, int]]) -> list[str]:
    found = []
    waited = Counter(order_id for event_type, order_id in decisions if event_type == "OrderPaymentWaited")
    failed = Counter(order_id for event_type, order_id in decisions if event_type == "OrderFailed")
    canceled = Counter(order_id for event_type, order_id in decisions if event_type == "OrderCanceled")
    for order_id, order in orders.items():
        if waited[order_id] > 1 or failed[order_id] > 1 or canceled[order_id] > 1:
            found.append(
                f"order {order_id}: {waited[order_id]} OrderPaymentWaited, {failed[order_id]} OrderFailed, "
                f"{canceled[order_id]} OrderCanceled"
            )
        paid_for = order.status in (OrderStatus.COMPLETED, OrderStatus.CANCELED)
        if paid_for and (waited[order_id], failed[order_id]) != (1, 0):
            found.append(f"{order.status.lower()} order {order_id}: decisions {waited[order_id]}/{failed[order_id]}")
        if (order.status == OrderStatus.CANCELED) != (canceled[order_id] == 1):
            found.append(f"{order.status.lower()} order {order_id}: {canceled[order_id]} OrderCanceled")
        if order.status == OrderStatus.FAILED and failed[order_id] != 1:
            found.append(f"failed order {order_id}: {failed[order_id]} OrderFailed")
    return found
