import atexit
import os
import shutil
import tempfile

from common.broker_options import broker_transport, broker_transport_options

from .base import *  # noqa: F403
from .base import CACHES, DATABASES, INSTALLED_APPS, REST_FRAMEWORK, STORAGES, env

SECRET_KEY = "tests-only-not-secret"
# Separate names let several test runs share one machine (TEST_DATABASE_NAME, TEST_REDIS_URL).
DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME", default="test_shop")}
DEBUG = False
# Tests use their own Redis database so that a running `make run` fleet never sees their tasks.
REDIS_URL = env("TEST_REDIS_URL", default="redis://127.0.0.1:6379/15")
CACHES["default"]["LOCATION"] = REDIS_URL
# TEST_BROKER_KIND=amqp: the broker is RabbitMQ, on a virtual host named after the test database, so that two
# runs' queues of the same names never meet (created by the tests' session fixture, tests/broker/rabbitmq.py).
# (Not TEST_BROKER: Celery's test worker takes that one for the broker's host name.)
TEST_BROKER_KIND = env("TEST_BROKER_KIND", default="redis")
if TEST_BROKER_KIND == "amqp":
    CELERY_BROKER_URL = env(
        "TEST_AMQP_URL", default=f"amqp://guest:guest@127.0.0.1:5672/{DATABASES['default']['TEST']['NAME']}"
    )
else:
    CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_TRANSPORT = broker_transport(CELERY_BROKER_URL)
CELERY_BROKER_TRANSPORT_OPTIONS = broker_transport_options(CELERY_BROKER_URL)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DATA_PLATFORM_URL = None
DATA_PLATFORM_BACKOFF_SECONDS = 0.05
RANK_CACHE_SECONDS = 10
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
# The tests' in-process worker runs tasks on short-lived threads: let each task close its connection, so
# that none outlives its thread and blocks dropping the test database.
CELERY_DB_REUSE_MAX = 0
# Static files straight from the apps, as in local development (no collectstatic before the tests).
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = None
# Rate limits are counted on every request, as in production, but high enough that only the tests of
# the limits themselves meet them (they set their own rates).
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": dict.fromkeys(REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "100000/hour"),
}
# The quick chaos run (tests/chaos) recreates a database and flushes a Redis db of its own: named after the
# test database and on db 14 by default, so that two checkouts' `make test` can run at once.
CHAOS_DATABASE_NAME = env("TEST_CHAOS_DATABASE_NAME", default=f"{DATABASES['default']['TEST']['NAME']}_chaos")
CHAOS_REDIS_URL = env("TEST_CHAOS_REDIS_URL", default="redis://127.0.0.1:6379/14")
# A throwaway fourth saga participant (tests/loyalty): the whole suite runs with it installed, which
# proves that a participant is one folder plus its route lines.
INSTALLED_APPS = [*INSTALLED_APPS, "tests.loyalty"]
EVENT_ROUTES_MODULE = "tests.loyalty.routes"


def _metrics_directory() -> str:
    """A directory for this test run, removed when the process that made it exits (not a forked child)."""
    path, owner = tempfile.mkdtemp(prefix="shop-test-metrics-"), os.getpid()

    def remove() -> None:
        if os.getpid() == owner:
            shutil.rmtree(path, ignore_errors=True)

    atexit.register(remove)
    return path


# Metrics as the fleet counts them (common.metrics): every process of a test run (this one, and the workers and
# servers it starts, which inherit the variable) writes to one directory, the run's own unless one is given.
# Set here because prometheus-client reads it once, when first imported, which is after the settings.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_directory()
