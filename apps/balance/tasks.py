from celery import shared_task

from apps.balance.services import BalanceUse, balance_refund_many, balance_use_many
from apps.orders.events import OrderCanceled, OrderCreated, OrderFailed
from common.tasks import BATCHED_COMPENSATION_TASK_OPTIONS, BATCHED_LISTENER_TASK_OPTIONS
from eventbus.events import event_from_envelope


@shared_task(**BATCHED_LISTENER_TASK_OPTIONS)
def use_balance_task(*envelopes: dict) -> None:
    events: list[OrderCreated] = [event_from_envelope(envelope) for envelope in envelopes]
    balance_use_many(BalanceUse(order_id=e.order_id, user_id=e.user_id, amount=e.total_price) for e in events)


@shared_task(**BATCHED_COMPENSATION_TASK_OPTIONS)
def refund_balance_task(*envelopes: dict) -> None:
    events: list[OrderFailed | OrderCanceled] = [event_from_envelope(envelope) for envelope in envelopes]
    balance_refund_many(event.order_id for event in events)
