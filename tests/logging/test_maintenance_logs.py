"""Quiet when there is nothing to do: beat sends the relay every 2 s and the sweep every 5 s; neither beat nor
those tasks write a line at INFO unless they did something, and then each line names what it did it to."""

import json
from collections import Counter
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from apps.orders.models import Order
from apps.orders.tasks import sweep_orders_task
from common.queues import MAINTENANCE_QUEUE
from common.redis import redis_client
from eventbus.models import OutboxMessage
from eventbus.tasks import purge_outbox_task, relay_outbox_task
from tests.logging.conftest import fleet_process, parsed
from tests.saga_worker import wait_for

BEAT_TIMEOUT = 30.0


@pytest.mark.django_db(transaction=True)
def test_the_relay_and_the_sweep_with_nothing_to_do_write_nothing_at_info(log_lines, task_receivers):
    # when: beat's frequent tasks run, in a worker's way (with its task receivers), with nothing to do
    relay_outbox_task.apply()
    sweep_orders_task.apply()
    quiet = log_lines()
    # and an hourly one runs too, which says it ran: the lines are there to be seen
    purge_outbox_task.apply()

    # then
    assert quiet == []
    assert [(line["event"], line["task"]) for line in log_lines()] == [
        ("task_succeeded", "eventbus.tasks.purge_outbox_task")
    ]


@pytest.mark.django_db(transaction=True)
def test_the_relay_logs_each_row_it_sends_again_or_parks_with_its_events_ids(
    log_lines, task_receivers, make_user, make_product, place_order
):
    # given: an order whose listeners were never marked dispatched (its process died after the commit), one of
    # them sent so often already that the relay gives up on it
    order_id = place_order(make_user(balance=50_000), [(make_product().pk, 1)])
    rows = OutboxMessage.objects.filter(order_id=order_id)
    grace = timedelta(seconds=settings.OUTBOX_DISPATCH_GRACE_SECONDS + 1)
    rows.update(created_at=timezone.now() - grace, dispatched_at=None)
    worn = rows.order_by("pk").first()
    rows.filter(pk=worn.pk).update(dispatch_count=settings.OUTBOX_MAX_DISPATCHES)

    before = len(log_lines())

    # when
    relay_outbox_task.apply()

    # then: one line for each row, with its listener and its event's ids; the task's own success says nothing
    lines = log_lines()[before:]
    sent = [line for line in lines if line["event"] == "listener_sent_again"]
    parked = [line for line in lines if line["event"] == "outbox_row_parked"]
    assert {line["listener"] for line in sent} == set(rows.exclude(pk=worn.pk).values_list("listener", flat=True))
    assert [(line["listener"], line["level"]) for line in parked] == [(worn.listener, "warning")]
    for line in sent + parked:
        assert (line["order_id"], line["correlation_id"], line["event_type"]) == (
            order_id,
            f"order-{order_id}",
            "OrderCreated",
        )
        assert line["event_id"] == str(worn.event_id)
    assert len(lines) == len(sent) + len(parked)


@pytest.mark.django_db(transaction=True)
def test_the_sweep_logs_each_order_it_settles_with_its_ids(
    log_lines, task_receivers, make_user, make_product, place_order
):
    # given: an order whose steps never reported, past its deadline
    order_id = place_order(make_user(balance=50_000), [(make_product().pk, 1)])
    late = timezone.now() - timedelta(seconds=settings.SAGA_DEADLINE_SECONDS + 1)
    Order.objects.filter(pk=order_id).update(created_at=late)

    # when
    sweep_orders_task.apply()

    # then
    assert Order.objects.get(pk=order_id).status == "FAILED"
    recovered = [line for line in log_lines() if line["event"] == "order_recovered"]
    assert [(line["order_id"], line["correlation_id"], line["outcome"]) for line in recovered] == [
        (order_id, f"order-{order_id}", "failed")
    ]


def sent_by_beat() -> Counter:
    """The tasks waiting in the maintenance queue, by name (nothing consumes it in this test)."""
    messages = redis_client().lrange(MAINTENANCE_QUEUE, 0, -1)
    return Counter(json.loads(message)["headers"]["task"] for message in messages)


def test_beat_sending_the_relay_and_the_sweep_writes_nothing_at_info(tmp_path):
    # given: nothing waits in the maintenance queue
    redis_client().delete(MAINTENANCE_QUEUE)
    frequent = {"eventbus.tasks.relay_outbox_task": 2, "apps.orders.tasks.sweep_orders_task": 1}

    # when: beat runs, as the Procfile starts it, until it has sent the relay twice and the sweep once
    with fleet_process(["celery", "-A", "config", "-q", "beat", "-s", str(tmp_path / "schedule")]) as beat:
        wait_for(lambda: sent_by_beat() >= Counter(frequent), timeout=BEAT_TIMEOUT, message="beat's tasks")
        written = list(beat.lines)
    redis_client().delete(MAINTENANCE_QUEUE)

    # then: it wrote nothing (what it writes is JSON)
    assert parsed(written) == []
