"""The routing table (EVENT_ROUTES_MODULE: the shop's, plus the test participant's lines) and the queues:
every event has an entry, every listener is a registered Celery task on its app's own queue, and a task
sent to a queue lands in that queue only."""

import base64
import json

import pytest
from django.apps import apps

from apps.orders.events import OrderCreated, OrderFailed
from common.queues import MAINTENANCE_QUEUE, SAGA_GROUPS, all_queues, queues_of
from common.redis import redis_client
from config.celery import app
from eventbus import publish
from eventbus.bus import as_listener, dispatch
from eventbus.events import envelope_of, event_from_envelope
from eventbus.models import OutboxMessage
from tests.eventbus.samples import EVENT_CLASSES, sample_event
from tests.participants import routes

ROUTES = routes()

LISTENERS = sorted({as_listener(r).task for routes in ROUTES.values() for r in routes}, key=lambda task: task.name)
APP_TASK_NAMES = sorted(name for name in app.tasks if name.startswith("apps."))


def app_of(task_name: str) -> str:
    """`<app module>.tasks.<name>` → the app's label."""
    app_module, _, _ = task_name.rpartition(".tasks.")
    config = apps.get_containing_app_config(task_name)
    assert config is not None and config.name == app_module, f"{task_name} is not an app's task"
    return config.label


def test_every_event_of_the_apps_has_an_entry_in_the_routing_table():
    assert set(EVENT_CLASSES) <= set(ROUTES)
    assert set(ROUTES) <= set(EVENT_CLASSES)


def test_every_listener_is_a_registered_celery_task():
    assert LISTENERS
    for task in LISTENERS:
        assert task.name in app.tasks
        assert app.tasks[task.name] is task._get_current_object()  # shared_task gives a proxy of the app's task


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("event_class", EVENT_CLASSES, ids=lambda c: c.__name__)
def test_publishing_an_event_dispatches_exactly_its_listeners_from_the_table(event_class):
    # when
    envelope = publish(sample_event(event_class))

    # then
    queued = []
    for queue in queues_of(SAGA_GROUPS):
        for raw in redis_client().lrange(queue, 0, -1):
            message = json.loads(raw)
            args = json.loads(base64.b64decode(message["body"]))[0]
            queued.append((queue, message["headers"]["task"], args[0]["event_id"]))
    event = event_from_envelope(envelope)
    wanting = [listener for listener in map(as_listener, ROUTES[event_class]) if listener.wants(event)]
    handled = set(
        OutboxMessage.objects.filter(event_id=envelope["event_id"], handled_at__isnull=False).values_list(
            "listener", flat=True
        )
    )
    # an inline listener ran here (its row is handled), or failed here (the sample names an order that
    # does not exist) and went to its queue like the others; a queued one never runs here
    ran_here = {li.task.name for li in wanting if li.inline and li.task.name in handled}
    assert handled == ran_here
    expected = [(app_of(li.task.name), li.task.name, envelope["event_id"]) for li in wanting]
    assert sorted(queued) == sorted(entry for entry in expected if entry[1] not in ran_here)


MAINTENANCE_TASKS = (
    "apps.orders.tasks.sweep_orders_task",
    "eventbus.tasks.relay_outbox_task",
    "eventbus.tasks.purge_outbox_task",
)
LISTENER_TASK_NAMES = [name for name in APP_TASK_NAMES if name not in MAINTENANCE_TASKS]


def test_every_queue_of_the_apps_is_declared():
    assert set(app.amqp.queues) == set(all_queues())
    assert {app_of(name) for name in LISTENER_TASK_NAMES} <= set(queues_of(SAGA_GROUPS))


@pytest.mark.parametrize("task_name", LISTENER_TASK_NAMES)
def test_every_task_of_an_app_runs_on_that_apps_own_queue(task_name):
    route = app.amqp.router.route({}, task_name)
    assert route["queue"].name == app_of(task_name)
    assert route["routing_key"] == app_of(task_name)


@pytest.mark.parametrize("task_name", MAINTENANCE_TASKS)
def test_the_relay_and_the_sweep_run_on_their_own_queue_away_from_saga_backlogs(task_name):
    # sent by name, as beat may: the sweep names its queue itself, the others are routed by their app
    app.send_task(task_name)

    client = redis_client()
    assert {name: client.llen(name) for name in all_queues()} == {
        name: 1 if name == MAINTENANCE_QUEUE else 0 for name in all_queues()
    }


@pytest.mark.parametrize("queue", sorted({app_of(task.name) for task in LISTENERS}))
def test_a_dispatched_listener_lands_only_in_its_own_queues_redis_list(queue):
    # given one of the queue's listeners and an envelope of an event it listens to
    event_class, task = next(
        (event_class, listener.task)
        for event_class, routes in ROUTES.items()
        for listener in map(as_listener, routes)
        if app_of(listener.task.name) == queue
    )
    envelope = envelope_of(sample_event(event_class))

    # when
    dispatch(task, envelope)

    # then
    client = redis_client()
    assert {name: client.llen(name) for name in queues_of(SAGA_GROUPS)} == {
        name: 1 if name == queue else 0 for name in queues_of(SAGA_GROUPS)
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("event_class", [OrderCreated, OrderFailed], ids=lambda c: c.__name__)
def test_an_order_without_a_coupon_costs_no_coupon_task(event_class):
    # when an order event without a coupon is published
    publish(sample_event(event_class, optional_as_none=True))

    # then the coupons app gets nothing (no outbox row, no task), the other participants do
    assert redis_client().llen("coupons") == 0
    assert not OutboxMessage.objects.filter(listener__startswith="apps.coupons.").exists()
    assert redis_client().llen("balance") == redis_client().llen("products") == 1


def test_the_event_the_api_publishes_has_no_inline_listener():
    # OrderCreated is published by POST /api/v1/orders: its listeners must leave through the broker, or
    # the request would wait for the three steps
    assert not [listener.task.name for listener in map(as_listener, ROUTES[OrderCreated]) if listener.inline]
