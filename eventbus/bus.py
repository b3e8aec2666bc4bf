"""Publishing, and the receivers that stand for listeners (a transactional outbox underneath).

`publish(event)` sends the `domain_event` signal with the event's class as sender. Each listener is one
receiver, connected for one event class: it writes an outbox row for its listener in the publisher's
transaction and returns the dispatch it owes. `publish` then asks the connection to make those
dispatches on commit: inside a transaction the tasks leave only if it commits (and the rows with it);
outside one they leave at once. A receiver never does the work inline. If a dispatch never happens or
is lost, the relay (eventbus.relay) sends the row's task again; the listener marks the row handled
when it succeeds (eventbus.listeners).
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from celery import Task
from django.db import transaction
from django.dispatch import Signal

from eventbus.events import DomainEvent, envelope_of
from eventbus.outbox import Dispatch, dispatch, dispatch_all, outbox_write

__all__ = ("connect_routes", "dispatch", "domain_event", "publish")

domain_event = Signal()  # sent with sender=<event class>, event=<instance>, envelope=<wire form>


def publish(event: DomainEvent) -> dict[str, Any]:
    """Publish a domain event; returns its envelope."""
    envelope = envelope_of(event)
    responses = domain_event.send(sender=type(event), event=event, envelope=envelope)
    dispatches = [response for _, response in responses if isinstance(response, Dispatch)]
    if dispatches:

        def dispatch_on_commit() -> None:  # a named function: Django logs a failing hook by its name
            dispatch_all(dispatches)

        transaction.on_commit(dispatch_on_commit, robust=True)
    return envelope


def _every_event(event: DomainEvent) -> bool:
    return True


@dataclass(frozen=True)
class Listener:
    """A listener's task, and which events of its type it wants (all, unless the route says only_if)."""

    task: Task
    wants: Callable[[DomainEvent], bool] = _every_event


def only_if(wants: Callable[[DomainEvent], bool], task: Task) -> Listener:
    """A route to a listener that wants only some events of a type: the others cost no task at all."""
    return Listener(task=task, wants=wants)


def as_listener(route: Task | Listener) -> Listener:
    return route if isinstance(route, Listener) else Listener(task=route)


def listener_receiver(listener: Listener):
    """A receiver standing for one listener: its outbox row now, its task on commit."""

    def receiver(sender, event, envelope, **kwargs) -> Dispatch | None:
        if not listener.wants(event):
            return None
        return outbox_write(event=event, envelope=envelope, task=listener.task)

    receiver.__name__ = receiver.__qualname__ = f"listener_{listener.task.name}"
    return receiver


def connect_routes(routes: Mapping[type[DomainEvent], Iterable[Task | Listener]]) -> None:
    for event_class, entries in routes.items():
        for listener in map(as_listener, entries):
            domain_event.connect(
                listener_receiver(listener),
                sender=event_class,
                weak=False,
                dispatch_uid=f"{event_class.__name__}->{listener.task.name}",
            )
