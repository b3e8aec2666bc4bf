"""The queues derived from the installed apps (common.queues), the router that sends each task to its app's
queue through the real Redis broker, and `celery worker --queue-groups` (common.worker_queues) in a real
worker process."""

import os
import shlex
import socket
import subprocess
import sys
import time
import uuid
from importlib import import_module
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.apps import AppConfig, apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import module_has_submodule

from chaos.processes import roles
from common.app_hooks import app_modules
from common.procfile import procfile_entries, worker_queue_groups
from common.queues import (
    GROUPS,
    MAINTENANCE,
    MAINTENANCE_QUEUE,
    STEPS,
    UnknownQueueGroup,
    all_queues,
    app_queues,
    group_of,
    queues_of,
)
from common.redis import redis_client
from config.celery import app
from eventbus.bus import as_listener

CELERY = str(Path(sys.executable).parent / "celery")
ROUTES = import_module(settings.EVENT_ROUTES_MODULE).ROUTES
LISTENERS = sorted({as_listener(route).task.name for routes in ROUTES.values() for route in routes})


@pytest.fixture(scope="module", autouse=True)
def tasks_discovered() -> None:
    """Every app's tasks registered, as in a worker or beat (this process imports only what tests import)."""
    app.autodiscover_tasks(force=True)


def participant_apps() -> dict[str, AppConfig]:
    return {config.name: config for config, _ in app_modules("participant")}


def apps_with_tasks() -> list[AppConfig]:
    return [config for config in apps.get_app_configs() if module_has_submodule(config.module, "tasks")]


def waiting() -> dict[str, int]:
    """How many messages wait in each queue that holds any (each queue is a Redis list)."""
    client = redis_client()
    return {name: count for name in {*all_queues(), settings.CELERY_TASK_DEFAULT_QUEUE} if (count := client.llen(name))}


# --- The groups, from what the apps declare ----------------------------------------------------------------


def test_every_participant_app_has_its_own_queue_in_the_steps_group():
    assert participant_apps()
    steps = {queue.app: queue.queue for queue in app_queues() if queue.group == STEPS}
    assert steps == {name: config.label for name, config in participant_apps().items()}


def test_every_other_app_with_tasks_is_in_the_group_its_app_config_names_or_in_none():
    declared = {
        config.name: config.queue_group
        for config in apps_with_tasks()
        if config.name not in participant_apps() and getattr(config, "queue_group", None)
    }
    assert {queue.app: queue.group for queue in app_queues() if queue.group != STEPS} == declared


def test_a_queue_is_named_by_its_app_label_and_the_maintenance_apps_share_one():
    labels = {config.name: config.label for config in apps.get_app_configs()}
    for queue in app_queues():
        assert queue.queue == (MAINTENANCE_QUEUE if queue.group == MAINTENANCE else labels[queue.app])


def test_the_queues_a_running_broker_holds_messages_in_keep_their_names():
    # a renamed queue would strand what a running broker already holds in the old one
    today = {"orders", "balance", "coupons", "products", "payments", "dataplatform", "maintenance"}
    assert today <= set(all_queues())


def test_every_queue_is_in_exactly_one_group_and_declared_to_celery():
    per_group = [set(queues_of([group])) for group in GROUPS]
    assert all(per_group)
    assert sum(map(len, per_group)) == len(all_queues())
    assert set(app.amqp.queues) == set(all_queues())


def test_an_unknown_group_is_refused():
    with pytest.raises(UnknownQueueGroup, match="'nonsense'"):
        queues_of([STEPS, "nonsense"])


@pytest.mark.parametrize(
    ("declared", "participant"), [("nonsense", False), ("remote", True)], ids=["unknown", "participant-elsewhere"]
)
def test_an_app_that_declares_a_wrong_group_is_refused(declared, participant):
    config = SimpleNamespace(name="apps.example", queue_group=declared)
    with pytest.raises(ImproperlyConfigured):
        group_of(config, participant=participant)


def test_the_fleets_workers_name_groups_and_together_consume_every_group():
    procfile = (settings.BASE_DIR / "Procfile").read_text()
    workers = [shlex.split(command) for _, command in procfile_entries(procfile) if " worker " in command]
    assert workers and all("-Q" not in words for words in workers)
    procfile_groups = {group for groups in worker_queue_groups(procfile).values() for group in groups}
    assert procfile_groups == set(GROUPS)


def test_the_chaos_run_starts_the_procfiles_workers_on_the_same_groups(tmp_path):
    chaos_workers = {
        role.name: tuple(role.command[role.command.index("--queue-groups") + 1].split(","))
        for role in roles(tmp_path, api_port=8765)
        if "worker" in role.command
    }
    assert chaos_workers == worker_queue_groups()


# --- The router, through the real broker ---------------------------------------------------------------------


@pytest.mark.parametrize("task_name", LISTENERS)
def test_every_listener_of_the_route_table_lands_in_its_apps_queue(task_name):
    task = app.tasks[task_name]

    task.apply_async(args=({},))

    assert waiting() == {apps.get_containing_app_config(task.__module__).label: 1}


@pytest.mark.parametrize("entry", sorted(settings.CELERY_BEAT_SCHEDULE))
def test_beats_tasks_land_in_the_maintenance_queue_sent_as_a_task_or_by_name(entry):
    # the sweep is the orders app's task: it names the maintenance queue itself
    schedule = settings.CELERY_BEAT_SCHEDULE[entry]

    app.tasks[schedule["task"]].apply_async(**schedule.get("options", {}))
    app.send_task(schedule["task"], **schedule.get("options", {}))

    assert waiting() == {MAINTENANCE_QUEUE: 2}


def test_a_task_of_no_app_with_a_queue_goes_to_the_default_queue_unless_sent_to_a_named_one():
    # the benchmark's no-op task: its app has tasks but no group, and the benchmark names the queue
    app.send_task("bench.noop")
    app.send_task("bench.noop", queue="balance")

    assert waiting() == {settings.CELERY_TASK_DEFAULT_QUEUE: 1, "balance": 1}


# --- `celery worker --queue-groups` ------------------------------------------------------------------------


def worker_process(*options: str) -> subprocess.Popen:
    command = [CELERY, "-A", "config", "worker", "-P", "solo", "--without-gossip", "--without-mingle", *options]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_REDIS_URL": settings.REDIS_URL,
        "CELERY_SKIP_CHECKS": "1",
    }
    return subprocess.Popen(
        command, cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def consumed_queues(worker: subprocess.Popen, node: str, timeout: float = 30.0) -> set[str]:
    """The queues a running worker reports it consumes (`celery inspect active_queues`)."""
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        assert worker.poll() is None, worker.communicate()[0]
        if replies := app.control.inspect(destination=[node], timeout=0.5).active_queues():
            return {queue["name"] for queue in replies[node]}
    raise AssertionError(f"{node} did not answer within {timeout:.0f} s")


def test_a_worker_started_with_a_group_consumes_exactly_that_groups_queues():
    node = f"queue-groups-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    worker = worker_process("--queue-groups", STEPS, "-n", node, "-l", "warning")
    try:
        assert consumed_queues(worker, node) == set(queues_of([STEPS]))
    finally:
        worker.terminate()
        worker.communicate(timeout=30)


def test_a_worker_given_an_unknown_group_refuses_to_start():
    worker = worker_process("--queue-groups", f"{STEPS},nonsense")

    output, _ = worker.communicate(timeout=30)

    assert worker.returncode == 2
    assert "unknown queue group 'nonsense'" in output


def test_a_worker_given_groups_and_named_queues_refuses_to_start():
    # one would silently win over the other
    worker = worker_process("--queue-groups", STEPS, "-Q", "orders")

    output, _ = worker.communicate(timeout=30)

    assert worker.returncode != 0
    assert "leave out -Q and -X" in output


def test_celery_commands_that_do_not_set_django_up_still_know_every_queue():
    # `celery purge` reads the declared queues before anything has set Django up
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "TEST_REDIS_URL": settings.REDIS_URL}
    done = subprocess.run(
        [CELERY, "-A", "config", "purge", "-f"], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True
    )

    assert done.returncode == 0, done.stderr
