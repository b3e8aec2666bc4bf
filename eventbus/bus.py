"""Publishing, and the receivers that stand for listeners (a transactional outbox underneath).

`publish(event)` sends the `domain_event` signal with the event's class as sender. Each listener is one
receiver, connected for one event class, that answers whether its listener wants the event. `publish`
appends the event to the history (eventbus.models.EventRecord) and writes one outbox row per such
listener, in the publisher's transaction and in one statement, and asks the connection to make those
dispatches on commit: inside a transaction the tasks leave only if it commits (and the rows with it);
outside one they leave at once. No listener works inside the publisher's transaction. If a dispatch never
happens or is lost, the relay (eventbus.relay) sends the row's task again; the listener marks the row
handled when it succeeds (eventbus.listeners).

A route may say `inline(task)`: that listener runs in the publishing process right after the commit
(Spring's AFTER_COMMIT without @Async) instead of going through the broker, and falls back to its queue
if it fails. Its outbox row is written all the same, so a process that dies first loses nothing.
"""

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from celery import Task
from django.conf import settings
from django.db import transaction
from django.dispatch import Signal

from eventbus.events import DomainEvent, envelope_of
from eventbus.outbox import Publication, dispatch, dispatch_all, outbox_write
from eventbus.routing import Listener, as_listener, inline, only_if

__all__ = ("as_listener", "connect_routes", "dispatch", "domain_event", "inline", "only_if", "publish", "publish_all")

domain_event = Signal()  # sent with sender=<event class>, event=<instance>, envelope=<wire form>


def publish(event: DomainEvent) -> dict[str, Any]:
    """Publish a domain event; returns its envelope."""
    return publish_all([event])[0]


def publish_all(events: Iterable[DomainEvent]) -> list[dict[str, Any]]:
    """Publish several events, in order, appending them to the history and writing all their outbox rows
    in one statement; returns their envelopes."""
    publications = []
    for event in events:
        envelope = envelope_of(event)
        responses = domain_event.send(sender=type(event), event=event, envelope=envelope)
        listeners = [response for _, response in responses if isinstance(response, Listener)]
        publications.append(Publication(event=event, envelope=envelope, listeners=listeners))
    dispatches = outbox_write(publications) if publications else []
    if dispatches:

        def dispatch_on_commit() -> None:  # a named function: Django logs a failing hook by its name
            dispatch_all(dispatches)

        transaction.on_commit(dispatch_on_commit, robust=True)
    return [publication.envelope for publication in publications]


def listener_receiver(listener: Listener):
    """A receiver standing for one listener: it answers whether the listener wants the event, and where
    it runs; `publish` writes the outbox rows of all the listeners that want it in one INSERT."""

    def receiver(sender, event, envelope, **kwargs) -> Listener | None:
        if not listener.wants(event):
            return None
        return replace(listener, inline=listener.inline and settings.EVENTBUS_INLINE_LISTENERS)

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
