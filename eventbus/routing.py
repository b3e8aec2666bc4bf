"""How a route names a listener: its task, which events it wants (only_if) and where it runs (inline)."""

from collections.abc import Callable
from dataclasses import dataclass, replace

from celery import Task

from eventbus.events import DomainEvent


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
