"""The event bus: domain events as frozen dataclasses, sent through a Django signal, each listener
dispatching its Celery task when the publishing transaction commits (Spring's AFTER_COMMIT + @Async),
with a transactional outbox underneath so that no event is lost."""

from eventbus.events import DomainEvent

__all__ = ("DomainEvent", "publish", "publish_all")


def __getattr__(name: str):
    # Publishing needs the outbox model, which cannot be imported while Django loads this app.
    if name in ("publish", "publish_all"):
        from eventbus import bus

        return getattr(bus, name)
    raise AttributeError(name)
