"""Publishing, and the receivers that stand for listeners.

`publish(event)` sends the `domain_event` signal with the event's class as sender. Each listener is one
receiver, connected for one event class, that asks the database connection to dispatch its Celery task
on commit: inside a transaction the task leaves only if the transaction commits; outside one it leaves
at once. A receiver never does the work inline.
"""

import functools
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from celery import Task
from django.db import transaction
from django.dispatch import Signal

from eventbus.events import DomainEvent, envelope_of

logger = logging.getLogger(__name__)

domain_event = Signal()  # sent with sender=<event class>, event=<instance>, envelope=<wire form>


def publish(event: DomainEvent) -> dict[str, Any]:
    """Publish a domain event; returns its envelope."""
    envelope = envelope_of(event)
    domain_event.send(sender=type(event), event=event, envelope=envelope)
    return envelope


def dispatch(task: Task, envelope: dict[str, Any]) -> None:
    task.apply_async(args=(envelope,))


def listener_receiver(task: Task):
    """A receiver standing for one listener: dispatches `task` with the envelope after commit."""

    def receiver(sender, event, envelope, **kwargs):
        transaction.on_commit(functools.partial(dispatch, task, envelope), robust=True)

    receiver.__name__ = receiver.__qualname__ = f"on_commit_{task.name}"
    return receiver


def connect_routes(routes: Mapping[type[DomainEvent], Iterable[Task]]) -> None:
    for event_class, tasks in routes.items():
        for task in tasks:
            domain_event.connect(
                listener_receiver(task),
                sender=event_class,
                weak=False,
                dispatch_uid=f"{event_class.__name__}->{task.name}",
            )
