"""CPU seconds spent by each part of the system, read from /proc: where an order's cost goes.

The fleet's children each lead a process group of their own (chaos.processes), which holds their
gunicorn or prefork children; PostgreSQL, Redis and RabbitMQ are found by their process names; this process is
the load generator (its client threads and its completion watcher)."""

import os
from collections import defaultdict
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
SERVERS = {"postgres": "postgres", "redis-server": "redis", "beam.smp": "rabbitmq"}  # RabbitMQ: the Erlang VM


def cpu_seconds_by_part(groups: dict[int, str]) -> dict[str, float]:
    """CPU seconds (user + system, with that of reaped children) so far of every live process, summed by
    part: `groups` names the process groups of the fleet's children; the rest is postgres, redis, load
    generator or other."""
    totals: dict[str, float] = defaultdict(float)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        # Its own time and that of its children that ended (a closed database connection's backend, a
        # replaced pool process): those are added to the parent when it reaps them, and would be lost.
        group = int(fields[2])
        ticks = sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
        if int(stat.parent.name) == os.getpid():
            part = "load generator"
        else:
            part = groups.get(group) or SERVERS.get(name, "other")
        totals[part] += ticks / TICKS_PER_SECOND
    return dict(totals)
