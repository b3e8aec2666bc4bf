"""The fleet's log lines: one shape for the API, the workers, beat and gunicorn (README, "Logs").

Every line is one JSON object on stdout (LOG_FORMAT=json) or a readable key=value line for development
(LOG_FORMAT=plain): `timestamp` (ISO 8601, UTC, milliseconds), `level`, `logger`, `event` (a short
snake_case name for the project's own lines, the message for a library's), then the fields the call gave
and those bound to the context: `request_id` in a request and in the tasks it sent, `task_id` and `task`
in a task, `event_id`, `event_type`, `correlation_id` and `order_id` while a listener handles an event
(eventbus.log_context). The standard library's loggers (Django, Celery, kombu, gunicorn, `logging` calls
anywhere) go through the same processors, so grepping one order's `correlation_id` finds its whole story.
"""

import logging
import re
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:  # the settings import this module: no Django import at run time
    from django.http import HttpRequest, HttpResponse

FORMATS = ("json", "plain")
LEADING = ("timestamp", "level", "logger", "event")
# django-structlog's lines around every task; those of beat's frequent tasks say nothing (see quiet_tasks).
TASK_LIFECYCLE = frozenset({"task_enqueued", "task_started", "task_succeeded"})
# The longest beat interval at which a task's own start and success lines are still noise.
FREQUENT_SECONDS = 60


def _timestamp(logger, method_name: str, event_dict: dict) -> dict:
    event_dict["timestamp"] = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return event_dict


def _leading_fields_first(logger, method_name: str, event_dict: dict) -> dict:
    """The same four keys open every JSON line, whoever wrote it."""
    return {
        **{key: event_dict.pop(key) for key in LEADING if key in event_dict},
        **event_dict,
    }


def _gunicorn_access_fields(logger, method_name: str, event_dict: dict) -> dict:
    """gunicorn's access line (when GUNICORN_ACCESS_LOG is on) as fields instead of Apache's text; the
    arguments of other lines are in their message already."""
    atoms = event_dict.pop("positional_args", None)
    record = event_dict.get("_record")
    if record is None or record.name != "gunicorn.access" or not isinstance(atoms, Mapping):
        return event_dict
    status = atoms.get("s")
    fields = {
        "event": "http_access",
        "method": atoms.get("m"),
        "path": atoms.get("U"),
        "query": atoms.get("q"),
        "status": int(status) if str(status).isdigit() else status,
        "bytes": atoms.get("B"),
        "duration_ms": atoms.get("M"),
        "remote_addr": atoms.get("h"),
        "request_id": atoms.get("{x-request-id}o"),
    }
    event_dict.update({key: value for key, value in fields.items() if value not in (None, "", "-")})
    return event_dict


def frequent_tasks(beat_schedule: Mapping[str, Mapping[str, Any]]) -> frozenset[str]:
    """The tasks beat sends more often than once every FREQUENT_SECONDS (the relay, the sweep)."""
    return frozenset(
        entry["task"]
        for entry in beat_schedule.values()
        if isinstance(entry.get("schedule"), int | float) and entry["schedule"] < FREQUENT_SECONDS
    )


def quiet_tasks(names: Iterable[str]) -> Callable:
    """A processor dropping the start and success lines of these tasks: the relay runs every 2 s and the
    sweep every 5 s, and they log themselves when they do something (resend, park, fail an order)."""
    quiet = frozenset(names)

    def drop_routine_lines(logger, method_name: str, event_dict: dict) -> dict:
        task = event_dict.get("task") or event_dict.get("child_task_name")
        if event_dict.get("event") in TASK_LIFECYCLE and task in quiet:
            raise structlog.DropEvent
        return event_dict

    return drop_routine_lines


def _correlation_of_order(logger, method_name: str, event_dict: dict) -> dict:
    """A line that names an order names its saga too (eventbus.events.correlation_id_of), so that one grep
    for `order-42` finds the order's whole story, the sweep's and the API's lines included."""
    if event_dict.get("correlation_id") is None and event_dict.get("order_id") is not None:
        from eventbus.events import correlation_id_of  # not at the top: the settings import this module

        event_dict["correlation_id"] = correlation_id_of(event_dict["order_id"])
    return event_dict


# Run on every line, the standard library's included (ProcessorFormatter's foreign_pre_chain).
SHARED_PROCESSORS = [
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    _timestamp,
]


def configure_structlog(*, quiet: Iterable[str] = ()) -> None:
    """structlog's loggers hand their event to the standard library's logging, whose handler (LOGGING)
    renders it with `formatter`: one pipeline, one shape, one level setting (LOG_LEVEL). Python's warnings
    become lines of the `py.warnings` logger too, instead of text on stderr."""
    logging.captureWarnings(True)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            # Before the context is merged: an order the call names wins over the one its context is about.
            _correlation_of_order,
            structlog.contextvars.merge_contextvars,
            quiet_tasks(quiet),
            *SHARED_PROCESSORS,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _check_format(format_name: str) -> None:
    if format_name not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {format_name!r}")


def formatter(format_name: str = "json") -> structlog.stdlib.ProcessorFormatter:
    """The handler's formatter (LOGGING's `()` factory): LOG_FORMAT `json` or `plain`."""
    _check_format(format_name)
    if format_name == "json":
        rendering = [
            structlog.processors.format_exc_info,  # the traceback as one string field, `exception`
            _leading_fields_first,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ]
    else:
        rendering = [structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())]
    return structlog.stdlib.ProcessorFormatter(
        pass_foreign_args=True,  # for _gunicorn_access_fields
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            *SHARED_PROCESSORS,
            structlog.stdlib.ExtraAdder(),  # `logging` calls' extra={...} fields
            _correlation_of_order,
            _gunicorn_access_fields,
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
    )


def logging_config(*, level: str, format_name: str) -> dict:
    """Django's LOGGING: everything to one handler on stdout, rendered by `formatter`."""
    _check_format(format_name)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"fleet": {"()": "common.logs.formatter", "format_name": format_name}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "fleet"},
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # beat's "Scheduler: Sending due task" for the relay (every 2 s) and the sweep (every 5 s) was a
            # third of all lines; its warnings and errors still show.
            "celery.beat": {"level": "WARNING"},
            # Celery's own "Task ... received" and "Task ... succeeded in" (and its retry line): django-structlog's
            # task_started / task_succeeded / task_retrying say the same with the task's ids and its duration.
            # Celery's failure line (ERROR) stays, beside task_failed.
            "celery.worker.strategy": {"level": "WARNING"},
            "celery.app.trace": {"level": "WARNING"},
            # "Not Found: /x" and "Bad Request: /y" for every 4xx: django-structlog's request_finished says it
            # with the request id and the user.
            "django.request": {"level": "ERROR"},
        },
    }


# --- The request id ---------------------------------------------------------------------------
REQUEST_ID_HEADER = "X-Request-ID"
# What a request id given by a caller may look like (a UUID, a load balancer's token): anything else, or
# nothing, gets a fresh one, so that a client cannot write arbitrary text into every line of its request.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


class RequestIdMiddleware:
    """The request's id: the caller's X-Request-ID if it looks like one, else a new UUID. django-structlog's
    RequestMiddleware (next in MIDDLEWARE, DJANGO_STRUCTLOG_TRUST_UPSTREAM_REQUEST_ID) binds it to every
    line of the request and to every task the request sends; the response carries it back."""

    def __init__(self, get_response: Callable[["HttpRequest"], "HttpResponse"]) -> None:
        self.get_response = get_response

    def __call__(self, request: "HttpRequest") -> "HttpResponse":
        given = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = given if _REQUEST_ID.fullmatch(given) else str(uuid.uuid4())
        request.META["HTTP_X_REQUEST_ID"] = request_id
        request.__dict__.pop("headers", None)  # read before (a cached property): read it again
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response
