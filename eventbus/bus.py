"""Publishing, and the receivers that stand for listeners (a transactional outbox underneath).

`publish(event)` sends the `domain_event` signal with the event's class as sender. Each listener is one
receiver, connected for one event class: it writes an outbox row for its listener in the publisher's
transaction and returns the dispatch it owes. `publish` then asks the connection to make those
dispatches on commit: inside a transaction the tasks leave only if it commits (and the rows with it);
outside one they leave at once. A receiver never does the work inside the publisher's transaction. If a
dispatch never happens or is lost, the relay (eventbus.relay) sends the row's task again; the listener
marks the row handled when it succeeds (eventbus.listeners).

A route may say `inline(task)`: that listener runs in the publishing process right after the commit
(Spring's AFTER_COMMIT without @Async) instead of going through the broker, and falls back to its queue
if it fails. Its outbox row is written all the same, so a process that dies first loses nothing.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from celery import Task
from django.conf import settings
from django.db import transaction
from django.dispatch import Signal

from eventbus.events import DomainEvent, envelope_of
from eventbus.outbox import Dispatch, dispatch, dispatch_all, outbox_write

__all__ = ("connect_routes", "dispatch", "domain_event", "inline", "only_if", "publish")

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
    """A listener's task, which events of its type it wants (all, unless the route says only_if), and
    where it runs: on its queue, or in the publishing process after the commit (the route says inline)."""

    task: Task
    wants: Callable[[DomainEvent], bool] = _every_event
    inline: bool = False


def as_listener(route: Task | Listener) -> Listener:
    return route if isinstance(route, Listener) else Listener(task=route)


def only_if(wants: Callable[[DomainEvent], bool], route: Task | Listener) -> Listener:
    """A route to a listener that wants only some events of a type: the others cost no task at all."""
    return replace(as_listener(route), wants=wants)


def inline(route: Task | Listener) -> Listener:
    """A route to a listener that runs in the publishing process once the transaction has committed:
    no broker round trip and no second worker, for short work that follows from the publisher's own.
    Only for events that workers publish: a web request would wait for the listener's work."""
    return replace(as_listener(route), inline=True)


def listener_receiver(listener: Listener):
    """A receiver standing for one listener: its outbox row now, its task (or inline run) on commit."""

    def receiver(sender, event, envelope, **kwargs) -> Dispatch | None:
        if not listener.wants(event):
            return None
        run_inline = listener.inline and settings.EVENTBUS_INLINE_LISTENERS
        return outbox_write(event=event, envelope=envelope, task=listener.task, inline=run_inline)

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
