"""The benchmark (`make bench`): the production settings plus the bench app, which adds the no-op task,
the monolith reference endpoint (/bench/monolith/orders, see bench/urls.py) and the counters of
bench/instrumentation.py. Never used outside the benchmark."""

from .production import *  # noqa: F403
from .production import INSTALLED_APPS, MIDDLEWARE

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
MIDDLEWARE = ["bench.instrumentation.QueryCountingMiddleware", *MIDDLEWARE]
ROOT_URLCONF = "bench.urls"
