"""Every move of an order is one log line with its id, once its transaction commits
(apps.orders.services.moves): what an operator follows in the logs, beside the tasks' lines."""

import logging

import pytest

from apps.orders.models import OrderStatus
from apps.orders.services import OrderLineInput, order_cancel, order_complete, order_create
from apps.payments.services import payment_pay
from tests.participants import record_every_step

pytestmark = pytest.mark.django_db(transaction=True)


def moves_logged(caplog, order_id: int) -> list[str]:
    lines = [record.msg for record in caplog.records if record.name == "apps.orders.services.moves"]
    return [line["event"] for line in lines if line["order_id"] == order_id]


def test_an_order_placed_decided_completed_and_cancelled_logs_each_move_once(make_user, make_product, caplog):
    user = make_user(balance=50_000)
    with caplog.at_level(logging.INFO, logger="apps.orders.services.moves"):
        order = order_create(user_id=user.pk, lines=[OrderLineInput(make_product().pk, 1)])
        record_every_step(order)
        record_every_step(order)  # repeated step results decide nothing again
        payment_pay(order_id=order.pk, user_id=user.pk, amount=order.total_price)
        order_complete(order_id=order.pk)
        order_complete(order_id=order.pk)
        assert order_cancel(order_id=order.pk) == OrderStatus.CANCELED

    assert moves_logged(caplog, order.pk) == [
        "order_placed",
        "order_payment_waiting",
        "order_completed",
        "order_canceled",
    ]
    canceled = next(record.msg for record in caplog.records if record.msg.get("event") == "order_canceled")
    assert canceled["reason"] == "canceled by the customer" and canceled["seconds"] >= 0
