"""On RabbitMQ: the relay reads what waits in each queue, and a publish the broker refuses is not lost."""

import pytest
from django.conf import settings
from kombu import Connection

from apps.orders.consistency import violations
from common.queues import declaration
from config.celery import app
from eventbus.models import OutboxMessage
from eventbus.queue_depth import waiting_messages
from eventbus.relay import outbox_relay
from tests.broker.conftest import on_rabbitmq
from tests.broker.refusing import broker_refusing_writes
from tests.saga.conftest import settled
from tests.saga_worker import queued_messages, running_worker

pytestmark = [on_rabbitmq, pytest.mark.django_db(transaction=True)]


def test_the_depth_of_a_queue_is_its_ready_messages():
    # given a queue of the run's vhost holding three messages, and a queue the broker does not have
    queue = declaration("depth-probe")
    with Connection(settings.CELERY_BROKER_URL) as connection:
        bound = queue(connection.default_channel)
        bound.declare()
        bound.purge()
        producer = connection.Producer()
        try:
            for number in range(3):
                producer.publish({"n": number}, exchange=queue.exchange, routing_key=queue.routing_key)

            # then the relay's reading says three, and nothing for the missing one
            assert waiting_messages(["depth-probe", "no-such-queue"]) == {"depth-probe": 3, "no-such-queue": 0}
        finally:
            bound.delete()


def test_when_rabbitmq_cannot_be_reached_the_depth_is_unknown(settings):
    app.conf.broker_url, saved = "amqp://guest:guest@127.0.0.1:1//", app.conf.broker_url
    try:
        assert waiting_messages(["orders"]) == {"orders": None}
    finally:
        app.conf.broker_url = saved


def test_an_order_whose_step_tasks_the_broker_refused_completes_through_the_relay(
    make_user, make_product, give_coupon, place_order, settings, published_events
):
    # given the broker refusing every publish (a nacked publisher confirm) while an order is placed
    user = make_user(balance=100_000)
    product = make_product(price=10_000, stock=5)
    with broker_refusing_writes():
        order_id = place_order(user, [(product.pk, 2)], give_coupon(user, rate="0.1").pk)

    # then its three step tasks are not lost: their rows wait undispatched, nothing is in the queues
    steps = OutboxMessage.objects.filter(order_id=order_id, event_type="OrderCreated")
    assert list(steps.values_list("dispatched_at", "dispatch_count").distinct()) == [(None, 0)]
    assert queued_messages() == 0

    # when the relay runs once the broker accepts again, then it sends them, and the saga runs to its end
    settings.OUTBOX_DISPATCH_GRACE_SECONDS = 0
    assert outbox_relay() == 3
    with running_worker(purge=False):
        settled(order_id, "COMPLETED")
    assert set(steps.values_list("dispatch_count", flat=True)) == {1}
    assert violations(published_events) == []
