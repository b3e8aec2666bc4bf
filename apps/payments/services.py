import structlog
from django.db import transaction
from django.utils import timezone

from apps.payments.events import PaymentCanceled, PaymentFailed, PaymentPaid
from apps.payments.gateway import GatewayUnavailable, get_gateway
from apps.payments.models import Payment, PaymentStatus
from common.circuit import PAYMENT_GATEWAY
from common.db import insert_or_skip
from common.errors import RetryableError
from eventbus import publish

logger = structlog.get_logger(__name__)


def _publish_outcome(payment: Payment) -> None:
    if payment.status == PaymentStatus.COMPLETED:
        publish(PaymentPaid(order_id=payment.order_id, payment_id=payment.pk, amount=payment.amount))
    elif payment.status == PaymentStatus.FAILED:
        publish(PaymentFailed(order_id=payment.order_id, payment_id=payment.pk, reason=payment.failure_reason))
    elif payment.status == PaymentStatus.CANCELED:
        publish(PaymentCanceled(order_id=payment.order_id, payment_id=payment.pk, reason=payment.failure_reason))


def payment_pay(*, order_id: int, user_id: int, amount: int) -> Payment | None:
    """Pay for an order once. A repeat finds the payment decided and changes nothing.

    The gateway is called outside any transaction (it is slow and remote) with the payment's id as the
    idempotency key, so a retry after a crash gets the gateway's first answer, not a second charge. The
    call goes through the gateway's circuit breaker (common.circuit): while it is open the call is not made
    and CallDeferred is raised, the payment staying READY for the task's retry. An order that failed while
    its payment waited is still paid when the retry comes, then cancelled (OrderCompleteFailed), as a payment
    in flight at the deadline is: an earlier call may have timed out after the gateway charged, and only a
    call with the same key tells."""
    if amount <= 0:
        publish(PaymentFailed(order_id=order_id, payment_id=None, reason="the amount to pay must be greater than 0"))
        return None
    payment = Payment(order_id=order_id, user_id=user_id, amount=amount)
    if not insert_or_skip(payment, unique="order_id"):
        payment = Payment.objects.get(order_id=order_id)
    if payment.status != PaymentStatus.READY:
        return payment  # decided and reported before; the outbox delivers that report
    with PAYMENT_GATEWAY.calling(key=f"pay:payment-{payment.pk}", outage=GatewayUnavailable) as call:
        if call.just_answered and _refreshed(payment).status != PaymentStatus.READY:
            call.skip()  # another run paid it a moment ago
            return payment
        result = get_gateway().pay(idempotency_key=f"payment-{payment.pk}", amount=payment.amount)
        if result.approved:
            changes = {
                "status": PaymentStatus.COMPLETED,
                "gateway_reference": result.reference,
                "paid_at": timezone.now(),
            }
        else:
            changes = {"status": PaymentStatus.FAILED, "failure_reason": result.reason[:255]}
        _decide(payment, changes)
    return payment


def _refreshed(payment: Payment) -> Payment:
    payment.refresh_from_db()
    return payment


def _decide(payment: Payment, changes: dict) -> None:
    """Move a READY payment to its outcome and report it, once: a run that finds it decided changes nothing."""
    with transaction.atomic():
        if Payment.objects.filter(pk=payment.pk, status=PaymentStatus.READY).update(**changes):
            for field, value in changes.items():
                setattr(payment, field, value)
            _publish_outcome(payment)


def payment_cancel(*, order_id: int, reason: str) -> Payment | None:
    """Cancel an order's completed payment, once: its order could not be completed (it failed while the
    payment was in flight), or its customer cancelled the completed order."""
    payment = Payment.objects.filter(order_id=order_id).first()
    if payment is None:
        logger.warning("payment_to_cancel_not_found", order_id=order_id)
        return None
    if payment.status == PaymentStatus.READY:
        raise RetryableError(f"payment {payment.pk} is still being paid")
    if payment.status == PaymentStatus.COMPLETED:
        with PAYMENT_GATEWAY.calling(key=f"cancel:payment-{payment.pk}", outage=GatewayUnavailable) as call:
            if call.just_answered and _refreshed(payment).status != PaymentStatus.COMPLETED:
                call.skip()  # another run cancelled it a moment ago
                return payment
            get_gateway().cancel(reference=payment.gateway_reference, idempotency_key=f"payment-{payment.pk}")
            with transaction.atomic():
                canceled = Payment.objects.filter(pk=payment.pk, status=PaymentStatus.COMPLETED).update(
                    status=PaymentStatus.CANCELED, failure_reason=reason[:255], canceled_at=timezone.now()
                )
                payment.refresh_from_db()
                if canceled:
                    _publish_outcome(payment)
    return payment
