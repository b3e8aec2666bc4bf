"""A customer cancels an order (docs/api.md, "Cancelling").

Before completion, a cancel fails the order the way its deadline would: a conditional update out of
CREATED or PAYMENT_WAITING, then OrderFailed and the usual compensations (a payment that succeeds later
finds the order FAILED and is cancelled through OrderCompleteFailed). A COMPLETED order moves to
CANCELED by a conditional update and publishes OrderCanceled, a saga of its own: the payment is
cancelled, each participant gives back what its own records say the order took, the rank loses the
order's units and the data platform is told.

Whatever the saga is doing meanwhile, the database settles the race: each of these moves is one
conditional UPDATE, so exactly one of a cancel and a decision (or of two cancels) moves the order.
"""

from django.db import transaction
from django.utils import timezone

from apps.orders.events import OrderCanceled
from apps.orders.models import Order, OrderStatus
from apps.orders.services.moves import order_moved
from apps.orders.services.order_events import lines_of
from apps.orders.services.saga import order_fail
from common.errors import ApplicationError
from eventbus import publish

NOT_COMPLETED = (OrderStatus.CREATED, OrderStatus.PAYMENT_WAITING)
CUSTOMER = "the customer"


class OrderNotCancelable(ApplicationError):
    code = "order_not_cancelable"
    status_code = 409


def order_cancel(*, order_id: int, by: str = CUSTOMER) -> str:
    """Cancel the order; returns its new status (FAILED or CANCELED). Raises OrderNotCancelable for an
    order already FAILED or CANCELED, including one that a racing cancel or decision has just ended."""
    reason = f"canceled by {by}"
    if order_fail(order_id=order_id, reason=reason, from_statuses=NOT_COMPLETED):
        return OrderStatus.FAILED
    # Not CREATED nor PAYMENT_WAITING any more, and a status never moves back: COMPLETED, or ended.
    if _cancel_completed(order_id=order_id, reason=reason):
        return OrderStatus.CANCELED
    status = Order.objects.filter(pk=order_id).values_list("status", flat=True).first()
    raise OrderNotCancelable(f"Order {order_id} is {status} and cannot be cancelled.", details={"status": status})


@transaction.atomic
def _cancel_completed(*, order_id: int, reason: str) -> bool:
    if not Order.objects.filter(pk=order_id, status=OrderStatus.COMPLETED).update(
        status=OrderStatus.CANCELED, canceled_at=timezone.now()
    ):
        return False
    order = Order.objects.prefetch_related("items").get(pk=order_id)
    order_moved(
        order_id=order.pk, status=OrderStatus.CANCELED, created_at=order.created_at, at=order.canceled_at, reason=reason
    )
    publish(
        OrderCanceled(
            order_id=order.pk,
            user_id=order.user_id,
            user_coupon_id=order.user_coupon_id,
            items=lines_of(order.items.all()),
            total_price=order.total_price,
            completed_at=order.completed_at,
            canceled_at=order.canceled_at,
            reason=reason,
            participants=order.taking_part,
        )
    )
    return True
