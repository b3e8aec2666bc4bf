"""The reference the saga is measured against: the same order done the pre-event way.

One request, one database transaction: price the items, run every participant's step effect (the balance
used, the coupon used, the stock deducted: the same code the saga's steps run, as each participant
declares it in its participant.py), pay through the gateway and save the order COMPLETED, all or
nothing. It writes only what a monolith would: the order and its items, the participants' own rows (the
ledgers, the used coupon) and the payment; no step records, no events, no outbox. It lives under bench/
only: it is not part of the shop.
"""

from django.db import transaction
from django.utils import timezone

from apps.orders.models import Order, OrderItem, OrderStatus
from apps.orders.process import SUCCESS
from apps.orders.services import OrderLineInput
from apps.orders.services.creation import order_price
from apps.orders.services.order_events import order_completed_event, order_created_event
from apps.payments.gateway import get_gateway
from apps.payments.models import Payment, PaymentStatus
from common.errors import ApplicationError
from common.participants import Participant, participants, participants_of, step_names
from common.steps import StepRejected


class StepRefused(ApplicationError):
    """A participant refused its step: the order is refused and nothing is written."""

    code = "step_refused"


class PaymentDeclined(ApplicationError):
    code = "payment_declined"


def _taking_part(order: Order) -> list[Participant]:
    """The participants of the order's steps, in step-name order: two orders lock rows in one order."""
    return [participant for participant in participants() if participant.step in order.taking_part]


def _run_steps(order: Order) -> None:
    """Each participant's step effect, as its saga step runs it."""
    created = order_created_event(order, order.created_items)
    for participant in _taking_part(order):
        try:
            participant.effect(created)
        except StepRejected as rejection:
            message = f"The {participant.step} step was refused: {rejection.reason}."
            raise StepRefused(message, details={"step": participant.step, "reason": rejection.reason}) from None


def _confirm_steps(order: Order) -> None:
    """The settlements of participants that reserve first, as the saga runs them on OrderCompleted."""
    completed = order_completed_event(order, order.created_items)
    for participant in _taking_part(order):
        if participant.confirm is not None:
            participant.confirm(completed)


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
    order = Order(
        user_id=user_id,
        user_coupon_id=user_coupon_id,
        status=OrderStatus.COMPLETED,
        gross_price=priced.gross_price,
        discount_price=priced.discount_price,
        total_price=priced.total_price,
        steps=dict.fromkeys(step_names(), SUCCESS),
        decided_at=now,
        completed_at=now,
    )
    order.participants = list(participants_of(order))
    order.save(force_insert=True)
    order.created_items = OrderItem.objects.bulk_create(
        OrderItem(order=order, product_id=pk, quantity=quantity, unit_price=priced.unit_prices[pk])
        for pk, quantity in priced.quantities.items()
    )
    _run_steps(order)
    order.payment = _pay(order=order, now=now)
    _confirm_steps(order)
    return order
