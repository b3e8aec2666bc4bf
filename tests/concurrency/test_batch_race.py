"""Batched step listeners racing: many deliveries at once, each claiming the others' waiting rows, for
users who can pay for some of their orders and a product short of units."""

from collections import Counter

import pytest

from apps.balance.models import BalanceStep, BalanceTransaction, TransactionKind
from apps.balance.selectors import balance_of
from apps.balance.tasks import use_balance_task
from apps.orders.consistency import violations
from apps.products.models import Stock, StockStep
from apps.products.tasks import deduct_stock_task
from common.steps import StepState
from eventbus.models import OutboxMessage
from tests.concurrency.conftest import all_decided, orders_with_tasks_purged, race, values
from tests.saga_worker import running_worker

pytestmark = pytest.mark.django_db(transaction=True)

PRICE = 10_000
USERS, ORDERS_PER_USER, AFFORDABLE, UNITS = 4, 4, 3, 10
STEPS = {task.name: task for task in (use_balance_task, deduct_stock_task)}


def test_batched_steps_racing_each_take_effect_once_per_order(transactional_db, make_user, make_product, settings):
    # given 4 users who can each pay for 3 of their 4 orders, 16 orders for a product with 10 units
    settings.LISTENER_BATCH_SIZE = 4
    product = make_product(price=PRICE, stock=UNITS)
    users = [make_user(balance=AFFORDABLE * PRICE) for _ in range(USERS)]
    orders = [
        order.pk
        for user in users
        for order in orders_with_tasks_purged(user_id=user.pk, product_id=product.pk, count=ORDERS_PER_USER)
    ]
    deliveries = [
        (task, row.envelope)
        for name, task in STEPS.items()
        for row in OutboxMessage.objects.filter(listener=name, order_id__in=orders)
    ]

    # when every delivery of both steps runs at the same moment, each claiming what the others have not
    values(race(len(deliveries), lambda i: deliveries[i][0].apply(args=(deliveries[i][1],)).get()))

    # then every row was handled, and every order has one record and one report per step
    assert not OutboxMessage.objects.filter(listener__in=STEPS, order_id__in=orders, handled_at__isnull=True).exists()
    for model in (BalanceStep, StockStep):
        assert sorted(model.objects.filter(order_id__in=orders).values_list("order_id", flat=True)) == orders
    reported = set(
        OutboxMessage.objects.filter(order_id__in=orders, event_type__in=STEP_RESULTS).values_list(
            "order_id", "event_type", "event_id"
        )
    )
    assert Counter(order_id for order_id, _, _ in reported) == Counter({order_id: 2 for order_id in orders})
    # each user paid for exactly the orders it could afford, and the product sold exactly its units
    for user in users:
        assert balance_of(user_id=user.pk) == 0
        uses = BalanceTransaction.objects.filter(user_id=user.pk, kind=TransactionKind.USE)
        assert uses.count() == AFFORDABLE
    assert BalanceStep.objects.filter(order_id__in=orders, state=StepState.APPLIED).count() == USERS * AFFORDABLE
    assert StockStep.objects.filter(order_id__in=orders, state=StepState.APPLIED).count() == UNITS
    assert Stock.objects.get(product=product).quantity == 0
    # and once a worker has run the rest of the sagas (payments, refunds), the orders both of whose steps
    # took effect completed, the others failed, and every invariant of §5 holds
    took_both = set(BalanceStep.objects.filter(state=StepState.APPLIED).values_list("order_id", flat=True)) & set(
        StockStep.objects.filter(state=StepState.APPLIED).values_list("order_id", flat=True)
    )
    with running_worker(purge=False):
        decided = all_decided(orders)
    assert {order.pk for order in decided if order.status == "COMPLETED"} == took_both
    assert all(order.status == "FAILED" for order in decided if order.pk not in took_both)
    assert violations() == []


STEP_RESULTS = ("BalanceUsed", "BalanceUseFailed", "StockDeducted", "StockDeductFailed")
