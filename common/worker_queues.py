"""`celery -A config worker --queue-groups steps`: a worker consumes the queues of the groups it is given
(common.queues), so that the fleet's commands name groups, never the queues of the apps installed today.

The option is Celery's own extension point for worker arguments (app.user_options), and the bootstep that
applies it runs while the worker is built, after Django is set up and before it consumes or prints its
banner. Without the option the worker is left as it was: `-Q` and `-X` keep working (not together with
it), and a worker given none of them consumes every declared queue.
"""

from typing import Any

import click
from celery import Celery, bootsteps
from celery.bin.base import CeleryOption
from celery.worker import WorkController

from common.queues import GROUPS, UnknownQueueGroup, check_groups, queues_of


def _groups_given(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    groups = tuple(part.strip() for part in value.split(",") if part.strip())
    if not groups:
        raise click.BadParameter("name at least one queue group")
    try:
        return check_groups(groups)
    except UnknownQueueGroup as unknown:
        raise click.BadParameter(str(unknown)) from unknown


QUEUE_GROUPS_OPTION = CeleryOption(
    ("--queue-groups",),
    callback=_groups_given,
    help_group="Queue Options",
    help=f"Consume the queues of these groups (comma-separated: {', '.join(GROUPS)}) instead of naming them with -Q.",
)


class ConsumeQueueGroups(bootsteps.Step):
    """Narrows the worker to the queues of --queue-groups."""

    name = "Queue groups"

    def __init__(self, worker: WorkController, queue_groups: tuple[str, ...] | None = None, **options: Any) -> None:
        super().__init__(worker, **options)
        if queue_groups is None:
            return
        declared = worker.app.amqp.queues
        if set(declared.consume_from) != set(declared):
            # -Q or -X narrowed the queues already; one of them would silently lose to the other.
            raise click.UsageError("--queue-groups chooses the queues itself: leave out -Q and -X")
        queues = queues_of(queue_groups)
        if not queues:
            # An empty selection would make the worker consume every queue instead of none.
            raise click.UsageError(f"no installed app has a queue in the group(s) {', '.join(queue_groups)}")
        worker.setup_queues(include=queues)


def add_queue_groups_option(app: Celery) -> None:
    app.user_options["worker"].add(QUEUE_GROUPS_OPTION)
    app.steps["worker"].add(ConsumeQueueGroups)
