"""Listener tasks of the products app: thin, load the event, call one service."""

from celery import shared_task

from apps.orders.events import OrderCanceled, OrderCompleted, OrderCreated, OrderFailed
from apps.products.rank import rank_add_order, rank_remove_order
from apps.products.services import StockLine, StockTake, stock_deduct_many, stock_restore_many
from common.tasks import (
    BATCHED_COMPENSATION_TASK_OPTIONS,
    BATCHED_LISTENER_TASK_OPTIONS,
    COMPENSATION_TASK_OPTIONS,
    LISTENER_TASK_OPTIONS,
)
from eventbus.events import event_from_envelope


@shared_task(**BATCHED_LISTENER_TASK_OPTIONS)
def deduct_stock_task(*envelopes: dict) -> None:
    events: list[OrderCreated] = [event_from_envelope(envelope) for envelope in envelopes]
    stock_deduct_many(
        StockTake(order_id=e.order_id, lines=tuple(StockLine(item.product_id, item.quantity) for item in e.items))
        for e in events
    )


@shared_task(**BATCHED_COMPENSATION_TASK_OPTIONS)
def restore_stock_task(*envelopes: dict) -> None:
    events: list[OrderFailed | OrderCanceled] = [event_from_envelope(envelope) for envelope in envelopes]
    stock_restore_many(event.order_id for event in events)


@shared_task(**LISTENER_TASK_OPTIONS)
def add_to_rank_task(envelope: dict) -> None:
    event: OrderCompleted = event_from_envelope(envelope)
    rank_add_order(
        order_id=event.order_id,
        sold_at=event.completed_at,
        lines=[(item.product_id, item.quantity) for item in event.items],
    )


@shared_task(**COMPENSATION_TASK_OPTIONS)
def remove_from_rank_task(envelope: dict) -> None:
    event: OrderCanceled = event_from_envelope(envelope)
    rank_remove_order(order_id=event.order_id, sold_at=event.completed_at)
