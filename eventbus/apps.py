from importlib import import_module

from django.apps import AppConfig
from django.conf import settings


class EventBusConfig(AppConfig):
    name = "eventbus"
    verbose_name = "Event bus"
    queue_group = "maintenance"  # the outbox relay and purge (common.queues)

    def ready(self) -> None:
        from eventbus.bus import connect_routes

        connect_routes(import_module(settings.EVENT_ROUTES_MODULE).ROUTES)
