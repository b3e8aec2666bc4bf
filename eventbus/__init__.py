"""The event bus: domain events as frozen dataclasses, sent through a Django signal, each listener
dispatching its Celery task when the publishing transaction commits (Spring's AFTER_COMMIT + @Async)."""

from eventbus.bus import publish
from eventbus.events import DomainEvent

__all__ = ("DomainEvent", "publish")
