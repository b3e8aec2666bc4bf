from collections.abc import Iterable

from django.db.models import Exists, OuterRef, Q, QuerySet

from eventbus.models import EventRecord, OutboxMessage

PARKED = Q(parked_at__isnull=False, handled_at__isnull=True)


def messages_of_order(*, order_id: int) -> QuerySet[OutboxMessage]:
    return OutboxMessage.objects.filter(order_id=order_id).order_by("pk")


def parked_messages(*, order_ids: Iterable[int]) -> list[OutboxMessage]:
    return list(OutboxMessage.objects.filter(PARKED, order_id__in=list(order_ids)).only("pk", "order_id", "listener"))


def has_parked_messages(order_id_field: str = "pk") -> Exists:
    """An annotation: does the row's order have a parked listener (something an operator must look at)?"""
    return Exists(OutboxMessage.objects.filter(PARKED, order_id=OuterRef(order_id_field)))


def order_history(*, order_id: int) -> QuerySet[EventRecord]:
    """Every event of the order's saga in the history, oldest first."""
    return EventRecord.objects.filter(order_id=order_id).order_by("occurred_at", "pk")
