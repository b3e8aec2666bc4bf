"""Settings shared by every environment; values come from the environment (docs/api.md, Settings)."""

import logging
from pathlib import Path

import environ

from common.broker_options import CLASSIC, broker_transport, broker_transport_options, checked_queue_type
from common.logs import configure_structlog, frequent_tasks, logging_config
from common.queues import MAINTENANCE_QUEUE, InstalledAppQueues

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()

SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "eventbus",
    "idempotency",
    "apps.accounts",
    "apps.orders",
    "apps.products",
    "apps.coupons",
    "apps.balance",
    "apps.payments",
    "apps.dataplatform",
    "django_structlog",
]

MIDDLEWARE = [
    # Outermost: every answer counted and timed by route for /metrics, refusals included; it reads no body.
    "common.metrics.http.HttpMetricsMiddleware",
    # The request's id (X-Request-ID, given or made, and returned), then bound to every log line of the
    # request and to the tasks it sends (common/logs.py); neither reads the body.
    "common.logs.RequestIdMiddleware",
    "django_structlog.middlewares.RequestMiddleware",
    # Then, before anything reads it: a body over API_MAX_BODY_BYTES is answered 413.
    "common.middleware.RequestBodyLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin, API docs) served by the application itself, compressed and cached for good.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/shop"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# psycopg sends parameters apart from the SQL (no quoting in Python) and prepares a statement that a
# connection runs for the DATABASE_PREPARE_THRESHOLD-th time (PostgreSQL then skips parsing and planning
# it): less CPU per query in the workers and in PostgreSQL. Both off behind a PgBouncer in
# transaction mode older than 1.21 (DATABASE_SERVER_SIDE_BINDING=false, DATABASE_PREPARE_THRESHOLD=0).
DATABASES["default"].setdefault("OPTIONS", {}).update(
    server_side_binding=env.bool("DATABASE_SERVER_SIDE_BINDING", default=True),
    prepare_threshold=env.int("DATABASE_PREPARE_THRESHOLD", default=5) or None,
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The connection budget (common/connection_budget.py; README, "Connections to PostgreSQL"): connections left
# to everything else on the machine, and kept for management commands beside the running system.
DATABASE_RESERVED_CONNECTIONS = env.int("DATABASE_RESERVED_CONNECTIONS", default=10)
DATABASE_COMMAND_CONNECTIONS = env.int("DATABASE_COMMAND_CONNECTIONS", default=2)

# A request body over API_MAX_BODY_BYTES is answered 413 (common/middleware.py); Django's own limit matches,
# for bodies without a Content-Length. The 413 reads and discards a body up to API_MAX_BODY_DRAIN_BYTES, so
# that a client still sending it gets the answer instead of a reset; a larger one is left to gunicorn.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=1024 * 1024)
API_MAX_BODY_DRAIN_BYTES = env.int("API_MAX_BODY_DRAIN_BYTES", default=10 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

# GET /metrics (common.metrics) is open unless this is set; then it needs `Authorization: Bearer <token>`.
# PROMETHEUS_MULTIPROC_DIR, where the fleet's processes write what they count, is no setting: prometheus-client
# reads it from the environment when a process starts (README, "Metrics").
METRICS_TOKEN = env("METRICS_TOKEN", default="") or None

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "cache",
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
    }
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="Asia/Seoul")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed names (cached for ever by browsers) from `collectstatic`; a missing manifest entry falls back
    # to the plain name instead of failing the page.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_MANIFEST_STRICT = False

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["knox.auth.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["common.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "common.api.exception_handler",
    "UNAUTHENTICATED_USER": None,
    # drf-spectacular's, plus the errors and headers implied by a view's configuration (common/openapi.py).
    "DEFAULT_SCHEMA_CLASS": "common.openapi.ApiSchema",
    "DEFAULT_THROTTLE_CLASSES": ["common.throttles.ScopedRedisRateThrottle"],
    # What one client may consume (per user, per scope; common.throttles): an empty rate turns a scope off.
    "DEFAULT_THROTTLE_RATES": {
        "order_create": env("THROTTLE_RATE_ORDER_CREATE", default="60/min") or None,
        "order_cancel": env("THROTTLE_RATE_ORDER_CANCEL", default="30/min") or None,
        "balance_charge": env("THROTTLE_RATE_BALANCE_CHARGE", default="30/min") or None,
        "coupon_issue": env("THROTTLE_RATE_COUPON_ISSUE", default="30/min") or None,
    },
}
# API keys are stored as digests (apps.accounts); `Authorization: Token <key>`, no expiry unless revoked.
REST_KNOX = {"TOKEN_TTL": None, "AUTH_HEADER_PREFIX": "Token"}

# The OpenAPI document (GET /api/schema/, docs at /api/docs/): open to anyone, without authentication or
# throttling; Swagger UI's files come from drf-spectacular-sidecar, served by the application (no CDN).
SPECTACULAR_SETTINGS = {
    "TITLE": "Shop saga API",
    "VERSION": "1.0.0",
    "DESCRIPTION": (
        "Orders and payments as an event-driven saga: list products and the best sellers, charge a balance, "
        "issue coupons, place orders (answered at once, CREATED; balance, coupon and stock are then taken in "
        "parallel, and the order is paid and COMPLETED or FAILED and compensated) and cancel them.\n\n"
        "**Authentication**: `Authorization: Token <key>` on every endpoint; a user acts only on their own "
        "resources (staff on anyone's).\n\n"
        '**Errors**: every 4xx and 5xx answer is JSON, the `Error` schema: `{"code", "message", "details"?}`, '
        "`code` being machine-readable (each response lists the codes it may carry). A method a path does not take "
        "is 405 `method_not_allowed` with an `Allow` header; an unknown path is 404 `not_found`. Money is an "
        "integer number of won.\n\n"
        "**Idempotency keys**: the four POSTs that change something (orders, balance charge, coupon issue, "
        "cancel) take an optional `Idempotency-Key` header; a repeat with the same key and body changes "
        "nothing and gets the first answer again with `Idempotent-Replayed: true`."
    ),
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Request and response components apart: what a client sends (`OrderCreateRequest`) is not what it reads.
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "apps.orders.models.OrderStatus",
        "PaymentStatusEnum": "apps.payments.models.PaymentStatus",
        "ProductStatusEnum": "apps.products.models.ProductStatus",
        "UserCouponStatusEnum": "apps.coupons.models.UserCouponStatus",
        "StepStatusEnum": ["PENDING", "SUCCESS", "FAILED"],
        "CouponQueuedStatusEnum": ["QUEUED"],
    },
    "ENUM_GENERATE_CHOICE_DESCRIPTION": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "persistAuthorization": True},
}

# --- The saga -------------------------------------------------------------------------------
SAGA_DEADLINE_SECONDS = env.int("SAGA_DEADLINE_SECONDS", default=60)
# The process hash outlives the deadline by a margin, so a late step result still finds it.
SAGA_PROCESS_TTL_SECONDS = SAGA_DEADLINE_SECONDS + env.int("SAGA_PROCESS_TTL_MARGIN", default=600)
ORDER_LOCK_LEASE_SECONDS = env.float("ORDER_LOCK_LEASE_SECONDS", default=10.0)
ORDER_LOCK_WAIT_SECONDS = env.float("ORDER_LOCK_WAIT_SECONDS", default=2.0)
ORDER_LOCK_POLL_SECONDS = env.float("ORDER_LOCK_POLL_SECONDS", default=0.005)
EVENT_ROUTES_MODULE = "config.event_routes"
# Listeners the routes mark inline run in the publishing worker after its commit; False sends every
# listener through its queue (to scale the orders app's listeners apart from the steps, say).
EVENTBUS_INLINE_LISTENERS = env.bool("EVENTBUS_INLINE_LISTENERS", default=True)
# The outbox relay (eventbus/resend.py): an event's task not dispatched within the dispatch grace, not started
# within the start grace while its message cannot be among those waiting in its queue (lost), or started but
# not handled once its worker's connection is gone or the longest listener time limit plus the margin has
# passed, is sent again; after OUTBOX_MAX_DISPATCHES it is parked.
OUTBOX_RELAY_INTERVAL_SECONDS = env.float("OUTBOX_RELAY_INTERVAL_SECONDS", default=2.0)
OUTBOX_DISPATCH_GRACE_SECONDS = env.float("OUTBOX_DISPATCH_GRACE_SECONDS", default=3.0)
OUTBOX_START_GRACE_SECONDS = env.float("OUTBOX_START_GRACE_SECONDS", default=3.0)
OUTBOX_HANDLE_MARGIN_SECONDS = env.float("OUTBOX_HANDLE_MARGIN_SECONDS", default=15.0)
OUTBOX_MAX_DISPATCHES = env.int("OUTBOX_MAX_DISPATCHES", default=10)
OUTBOX_RETENTION_HOURS = env.int("OUTBOX_RETENTION_HOURS", default=72)
# The event history (eventbus.models.EventRecord) outlives the outbox: what an order's history reads.
EVENT_HISTORY_RETENTION_DAYS = env.int("EVENT_HISTORY_RETENTION_DAYS", default=90)
# A batched listener's run (eventbus.listeners) handles at most this many rows in one transaction: the bound
# on how long it holds the rows it locks (one product's stock, say). 1 turns batches off.
LISTENER_BATCH_SIZE = env.int("LISTENER_BATCH_SIZE", default=20)

PAYMENT_GATEWAY = env("PAYMENT_GATEWAY", default="apps.payments.gateway.SimulatedGateway")
PAYMENT_DECLINE_RATE = env.float("PAYMENT_DECLINE_RATE", default=0.0)
PAYMENT_LATENCY_MS = env.int("PAYMENT_LATENCY_MS", default=0)
# How long a gateway call may wait: the payments' threads pool cannot enforce a task's hard time limit.
PAYMENT_GATEWAY_TIMEOUT_SECONDS = env.float("PAYMENT_GATEWAY_TIMEOUT_SECONDS", default=10.0)

DATA_PLATFORM_URL = env("DATA_PLATFORM_URL", default="") or None
DATA_PLATFORM_TIMEOUT_SECONDS = env.float("DATA_PLATFORM_TIMEOUT_SECONDS", default=5.0)
DATA_PLATFORM_MAX_ATTEMPTS = env.int("DATA_PLATFORM_MAX_ATTEMPTS", default=8)
DATA_PLATFORM_BACKOFF_SECONDS = env.float("DATA_PLATFORM_BACKOFF_SECONDS", default=2.0)
# Below CELERY_TASK_TIME_LIMIT: the relay leaves a retrying row that long, never starting a second chain beside it.
DATA_PLATFORM_BACKOFF_MAX_SECONDS = env.float("DATA_PLATFORM_BACKOFF_MAX_SECONDS", default=45.0)
# Circuit breakers around the payment gateway and the data platform (common/circuit.py): after this many
# consecutive failures (unreachable, timed out, 5xx) anywhere in the fleet, no call for the cool-off; the tasks
# wait their retry (at most CELERY_TASK_TIME_LIMIT at a time), then one trial call closes or reopens it.
CIRCUIT_FAILURE_THRESHOLD = env.int("CIRCUIT_FAILURE_THRESHOLD", default=5)
CIRCUIT_RESET_SECONDS = env.float("CIRCUIT_RESET_SECONDS", default=30.0)

# Idempotency-Key (docs/api.md): keys are kept this long; a request waits this long for its key's first request.
IDEMPOTENCY_KEY_TTL_HOURS = env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=24)
IDEMPOTENCY_WAIT_SECONDS = env.float("IDEMPOTENCY_WAIT_SECONDS", default=5.0)

# The consistency monitor (apps.orders.monitor): every interval, the invariants over the orders with an event
# in the window and what they touched; an order's own effects once it settled CONSISTENCY_SETTLE_SECONDS ago.
CONSISTENCY_MONITOR_INTERVAL_SECONDS = env.float("CONSISTENCY_MONITOR_INTERVAL_SECONDS", default=60.0)
CONSISTENCY_MONITOR_WINDOW_SECONDS = env.float("CONSISTENCY_MONITOR_WINDOW_SECONDS", default=300.0)
CONSISTENCY_SETTLE_SECONDS = env.float("CONSISTENCY_SETTLE_SECONDS", default=60.0)

RANK_CACHE_SECONDS = env.int("RANK_CACHE_SECONDS", default=10)
BALANCE_LIMIT = 10_000_000
MAX_ORDER_LINES = 50
MAX_LINE_QUANTITY = 1_000

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
# Chosen from the URL (common/broker_options.py, README "Brokers"): on Redis, kombu's transport keeping one
# client per channel (common/broker.py) and the visibility timeout; on RabbitMQ, publisher confirms.
CELERY_BROKER_TRANSPORT = broker_transport(CELERY_BROKER_URL)
# RabbitMQ's queue type: classic (durable), or quorum (replicated; RabbitMQ 4.0.1 or later).
CELERY_BROKER_QUEUE_TYPE = checked_queue_type(env("CELERY_BROKER_QUEUE_TYPE", default=CLASSIC), CELERY_BROKER_URL)
CELERY_TASK_DEFAULT_QUEUE_TYPE = CELERY_BROKER_QUEUE_TYPE
CELERY_TASK_DEFAULT_DELIVERY_MODE = "persistent"  # written to disk by RabbitMQ, kept across its restarts
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 60
CELERY_TASK_SOFT_TIME_LIMIT = 50
CELERY_BROKER_TRANSPORT_OPTIONS = broker_transport_options(CELERY_BROKER_URL)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Workers keep their database connection across tasks (config/celery.py closes it when it errored or
# outlived CONN_MAX_AGE, with a health check before reuse) instead of reconnecting for every task.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# One queue per app, in the group its app belongs to (steps, flow, remote, maintenance), derived from the
# installed apps once Django is ready (common.queues): a fleet is sized per domain, and the relay and the
# recovery sweep share their own queue, so that a backlog of saga tasks never delays what rescues them.
CELERY_TASK_QUEUES = InstalledAppQueues()
CELERY_TASK_ROUTES = ("common.queues.route_task",)
# The orders app's queue: where a task of no app with a queue goes unless sent to a named one.
CELERY_TASK_DEFAULT_QUEUE = "orders"
SAGA_SWEEP_INTERVAL_SECONDS = env.float("SAGA_SWEEP_INTERVAL_SECONDS", default=5.0)
# An order undecided this long is reconciled from the participants' records (e.g. after Redis lost it).
SAGA_RECONCILE_AFTER_SECONDS = env.float("SAGA_RECONCILE_AFTER_SECONDS", default=15.0)
CELERY_BEAT_SCHEDULE = {
    "relay-outbox": {
        "task": "eventbus.tasks.relay_outbox_task",
        "schedule": OUTBOX_RELAY_INTERVAL_SECONDS,
        "options": {"expires": OUTBOX_RELAY_INTERVAL_SECONDS * 5},
    },
    "purge-outbox": {"task": "eventbus.tasks.purge_outbox_task", "schedule": 3600},
    "purge-event-history": {"task": "eventbus.tasks.purge_event_history_task", "schedule": 3600},
    "purge-idempotency-keys": {"task": "idempotency.tasks.purge_idempotency_keys_task", "schedule": 3600},
    "monitor-consistency": {
        "task": "apps.orders.tasks.monitor_consistency_task",
        "schedule": CONSISTENCY_MONITOR_INTERVAL_SECONDS,
        "options": {"queue": MAINTENANCE_QUEUE, "expires": CONSISTENCY_MONITOR_INTERVAL_SECONDS},
    },
    "sweep-orders": {
        "task": "apps.orders.tasks.sweep_orders_task",
        "schedule": SAGA_SWEEP_INTERVAL_SECONDS,
        # Named here too: beat sends by name, and only a process that has the task imported sees its queue.
        "options": {"queue": MAINTENANCE_QUEUE, "expires": SAGA_SWEEP_INTERVAL_SECONDS * 5},
    },
}

# --- Logs (common/logs.py; README, "Logs") -------------------------------------------------------
# Every process writes one JSON object per line on stdout, the libraries' lines included; LOG_FORMAT=plain
# gives a readable line for development instead.
LOG_FORMAT = env("LOG_FORMAT", default="json")
LOGGING = logging_config(level=env("LOG_LEVEL", default="INFO"), format_name=LOG_FORMAT)
# Beat's frequent tasks (the relay, the sweep) log what they did, never that they ran.
configure_structlog(quiet=frequent_tasks(CELERY_BEAT_SCHEDULE))
# django-structlog: a request's id (the caller's X-Request-ID if it looks like one: common.logs) on every
# line of the request and of the tasks it sends. One line per request and per task at INFO (request_finished,
# task_succeeded with its duration); the lines as they start (and a task is sent) at DEBUG.
DJANGO_STRUCTLOG_CELERY_ENABLED = True
DJANGO_STRUCTLOG_TRUST_UPSTREAM_REQUEST_ID = True
DJANGO_STRUCTLOG_STATUS_START_LOG_LEVEL = logging.DEBUG
DJANGO_STRUCTLOG_CELERY_TASK_START_LOG_LEVEL = logging.DEBUG
