"""Redis restarts empty mid-saga: process hashes, locks and queued tasks are gone. No order hangs and none
gets two decisions: the outbox sends the lost tasks again and the sweep rebuilds the hash from the
participants' own records."""

import pytest

from apps.balance.tasks import use_balance_task
from apps.orders.consistency import violations
from apps.orders.services import orders_recover
from apps.orders.tasks import record_step_result_task
from apps.products.tasks import deduct_stock_task
from common.broker_options import is_amqp
from common.redis import redis_client
from eventbus.relay import outbox_relay
from tests.faults.conftest import envelopes_of
from tests.participants import all_steps
from tests.saga.conftest import event_counts, settled
from tests.saga_worker import running_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_redis_flushed_between_two_steps(
    transactional_db,
    settings,
    make_user,
    make_product,
    give_coupon,
    place_order,
    order_created_envelope,
    published_events,
):
    # given: two steps ran and their results reached the process hash; the coupon step is still queued
    user = make_user(balance=100_000)
    product = make_product(price=10_000, stock=5)
    order_id = place_order(user, [(product.pk, 2)], give_coupon(user, rate="0.1").pk)
    created = order_created_envelope(order_id)
    use_balance_task.apply(args=(created,))
    deduct_stock_task.apply(args=(created,))
    for event_type in ("BalanceUsed", "StockDeducted"):
        [result] = envelopes_of(event_type, order_id)
        record_step_result_task.apply(args=(result,))
    assert redis_client().hgetall(f"order:{order_id}:process") == {b"balance": b"SUCCESS", b"stock": b"SUCCESS"}

    # when Redis loses everything: the hash and the queued coupon step
    redis_client().flushdb()

    # then the relay sends the lost step again, and the sweep rebuilds the hash and decides, once
    settings.OUTBOX_START_GRACE_SECONDS = 0
    settings.SAGA_RECONCILE_AFTER_SECONDS = 0
    # (On RabbitMQ the queued coupon step outlives Redis: nothing is lost, nothing sent again.)
    lost_steps = 0 if is_amqp(settings.CELERY_BROKER_URL) else 1
    with running_worker(purge=False):
        assert outbox_relay() == lost_steps  # the coupon step; the others were handled before the flush
        wait_for(lambda: redis_client().hget(f"order:{order_id}:process", "coupon") == b"SUCCESS", message="coupon")
        assert orders_recover() == {"reconciled": 1}
        order = settled(order_id, "COMPLETED")
    assert order.steps == all_steps()
    assert event_counts(published_events)["OrderPaymentWaited"] == 1
    assert violations(published_events) == []
