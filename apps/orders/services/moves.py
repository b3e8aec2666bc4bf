"""What the operators' tools hear when an order moves, once the transaction that moved it commits: a log
line (`order_payment_waiting`, `order_completed`, `order_failed`, `order_canceled`, with the order's id and
the seconds since it was placed; `order_placed` when it is placed) and, for an outcome, the count in
/metrics. Called by the service whose conditional update moved the order, only when it changed the row:
so once per move."""

from datetime import datetime
from functools import partial

import structlog
from django.db import transaction

from apps.orders.metrics import OUTCOMES, count_order_moved

logger = structlog.get_logger(__name__)


def order_moved(*, order_id: int, status: str, created_at: datetime, at: datetime, reason: str = "") -> None:
    seconds = (at - created_at).total_seconds()
    transaction.on_commit(partial(_tell, order_id, status, seconds, reason), robust=True)


def _tell(order_id: int, status: str, seconds: float, reason: str) -> None:
    if status in OUTCOMES:
        count_order_moved(status, seconds)
    fields = {"order_id": order_id, "seconds": round(seconds, 3)}
    if reason:
        fields["reason"] = reason
    logger.info(f"order_{status.lower()}", **fields)


def order_placed(*, order_id: int, total_price: int) -> None:
    transaction.on_commit(partial(logger.info, "order_placed", order_id=order_id, total_price=total_price), robust=True)
