from collections.abc import Iterable

from apps.payments.models import Payment


def payment_summaries(*, order_ids: Iterable[int]) -> dict[int, dict]:
    """{order_id: {"id", "status", "amount"}} for the orders that have a payment."""
    return {
        payment["order_id"]: {"id": payment["id"], "status": payment["status"], "amount": payment["amount"]}
        for payment in Payment.objects.filter(order_id__in=list(order_ids)).values("id", "order_id", "status", "amount")
    }


def payment_status(*, order_id: int) -> str | None:
    """The status of the order's payment (READY, COMPLETED, FAILED, CANCELED), None if there is none."""
    return Payment.objects.filter(order_id=order_id).values_list("status", flat=True).first()
