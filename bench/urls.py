"""The shop's URLs plus the monolith reference (config.settings.bench)."""

from django.urls import path

from bench.apis import MonolithOrderCreateApi
from config.urls import handler400, handler403, handler404, handler500
from config.urls import urlpatterns as shop_urlpatterns

urlpatterns = [
    *shop_urlpatterns,
    path("bench/monolith/orders", MonolithOrderCreateApi.as_view(), name="bench-monolith-orders"),
]

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
