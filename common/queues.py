"""The broker's queues, derived from the installed apps (docs/design.md §8).

Every installed app that has a `tasks` module and a group gets its own queue, named by its app label. The
workers are started by group (`celery -A config worker --queue-groups steps`, common.worker_queues):

    steps        the saga's participants: every app with a participant.py (common.participants)
    flow         the orders app, which decides each order
    remote       apps that call remote systems, slow and retried (payments, dataplatform)
    maintenance  the outbox relay, the purges and the recovery sweep, all on the one queue `maintenance`,
                 so that a backlog of saga tasks never delays the machinery that rescues them

A participant needs nothing more than its participant.py; another app names its group in its AppConfig
(`queue_group = "remote"`). A task that runs elsewhere than its app's queue says so itself
(`@shared_task(queue=MAINTENANCE_QUEUE)`): route_task leaves a queue chosen by the task or its sender alone.
An app with tasks but no group (the benchmark's) has no queue: its tasks go to Celery's default queue
(CELERY_TASK_DEFAULT_QUEUE) unless sent to a named one.
"""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import django
from django.apps import AppConfig, apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import module_has_submodule
from kombu import Exchange, Queue

from common.app_hooks import app_modules, per_installed_apps
from common.broker_options import exchange_type, queue_arguments

STEPS, FLOW, REMOTE, MAINTENANCE = "steps", "flow", "remote", "maintenance"
GROUPS = (STEPS, FLOW, REMOTE, MAINTENANCE)
# The saga's own work, apart from the maintenance that rescues it.
SAGA_GROUPS = (STEPS, FLOW, REMOTE)
MAINTENANCE_QUEUE = "maintenance"
# Groups whose apps share one queue instead of having one each.
SHARED_QUEUES = {MAINTENANCE: MAINTENANCE_QUEUE}


class UnknownQueueGroup(ValueError):
    pass


@dataclass(frozen=True)
class AppQueue:
    app: str  # the app's module path (AppConfig.name): where its tasks live
    queue: str
    group: str


@per_installed_apps
def app_queues() -> tuple[AppQueue, ...]:
    """The queue of every installed app that has tasks and a group, in INSTALLED_APPS order."""
    participant_apps = {config.name for config, _ in app_modules("participant")}
    found: list[AppQueue] = []
    for config in apps.get_app_configs():
        group = group_of(config, participant=config.name in participant_apps)
        if group is not None and module_has_submodule(config.module, "tasks"):
            found.append(AppQueue(app=config.name, queue=SHARED_QUEUES.get(group, config.label), group=group))
    return tuple(found)


def group_of(config: AppConfig, *, participant: bool) -> str | None:
    declared = getattr(config, "queue_group", None)
    if declared is not None and declared not in GROUPS:
        raise ImproperlyConfigured(f"{config.name}: queue_group {declared!r} is none of {', '.join(GROUPS)}")
    if participant and declared not in (None, STEPS):
        raise ImproperlyConfigured(f"{config.name} is a saga participant: its group is {STEPS}, not {declared!r}")
    return STEPS if participant else declared


def check_groups(groups: Iterable[str]) -> tuple[str, ...]:
    groups = tuple(groups)
    if unknown := [group for group in groups if group not in GROUPS]:
        raise UnknownQueueGroup(
            f"unknown queue group {', '.join(map(repr, unknown))}; the groups are {', '.join(GROUPS)}"
        )
    return groups


def queues_of(groups: Iterable[str]) -> tuple[str, ...]:
    """The queues of these groups, group after group, each group's by name."""
    names: list[str] = []
    for group in check_groups(groups):
        for name in sorted({each.queue for each in app_queues() if each.group == group}):
            if name not in names:
                names.append(name)
    return tuple(names)


def all_queues() -> tuple[str, ...]:
    return queues_of(GROUPS)


def declaration(name: str) -> Queue:
    """A queue as the broker knows it: an exchange of the same name, bound by the same routing key. Durable,
    of the type CELERY_BROKER_QUEUE_TYPE names (classic or quorum, on RabbitMQ: README, "Brokers"; Redis
    ignores both), its exchange direct, or topic for quorum queues (common.broker_options.exchange_type)."""
    queue_type = settings.CELERY_BROKER_QUEUE_TYPE
    return Queue(
        name,
        Exchange(name, type=exchange_type(queue_type), durable=True),
        routing_key=name,
        durable=True,
        queue_arguments=queue_arguments(queue_type),
    )


class InstalledAppQueues(Mapping[str, Queue]):
    """Celery's task_queues: every group's queue, read from the installed apps when Celery first asks for
    them (a worker's start, the first task sent), by which time Django's app registry is ready. Declared,
    not only created on first use, so that a worker without -Q or --queue-groups consumes them all and a
    purge (`celery purge`, app.control.purge()) empties them all."""

    @cached_property
    def _queues(self) -> dict[str, Queue]:
        if not apps.ready:  # a Celery command that does not set Django up itself (`celery purge`, `call`)
            django.setup()
        return {name: declaration(name) for name in all_queues()}

    def __getitem__(self, name: str) -> Queue:
        return self._queues[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._queues)

    def __len__(self) -> int:
        return len(self._queues)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@per_installed_apps
def _queue_by_app() -> dict[str, str]:
    return {each.app: each.queue for each in app_queues()}


def queue_of_task(name: str, task: Any = None) -> str | None:
    """The queue of the app that defines a task (by its module, else by its name); None outside any app
    with a queue."""
    config = apps.get_containing_app_config(getattr(task, "__module__", None) or name)
    return None if config is None else _queue_by_app().get(config.name)


def route_task(name: str, args: Any, kwargs: Any, options: dict, task: Any = None, **_: Any) -> dict | None:
    """Celery's router (CELERY_TASK_ROUTES): a task goes to its app's queue, unless the task itself
    (`@shared_task(queue=...)`) or its sender named one; None leaves the choice to Celery."""
    if options.get("queue"):
        return None  # a routing key of ours beside another queue would lead the message nowhere
    queue = queue_of_task(name, task)
    return None if queue is None else {"queue": queue, "routing_key": queue}
