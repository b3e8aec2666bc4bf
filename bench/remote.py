"""The remote phases: the saga and the monolith with partners as slow as real ones, on a fleet of their own.

A real card gateway answers in 100-500 ms, a data platform over HTTP in about 100 ms. The fleet's
processes read their settings from the environment when they start, so these phases run on a second
fleet (the Procfile's, like the first), started once the first one has stopped, with the simulated
gateway at PAYMENT_LATENCY_MS and DATA_PLATFORM_URL pointing at a real HTTP server on this machine
(bench.dataplatform) that answers after its delay:

- saga_remote: the saga's closed-loop saturation (completed orders/s, with CLIENTS_FACTOR times the
  clients), then an open loop at half of it for the end-to-end latency;
- monolith_remote: the monolith reference, which pays inline, holding its request (and a gunicorn
  thread) for the gateway's latency.

Then every delivery is waited for and docs/design.md §5 checked again.
"""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from bench import phases
from bench.data import Customer
from bench.dataplatform import running_data_platform
from bench.environment import remote_environment
from bench.settled import saga_violations, wait_delivered
from chaos.environment import RunEnvironment
from chaos.runner import running_fleet

DATA_PLATFORM_PART = "data platform"  # its CPU's part (bench.cpu)
# Closed-loop clients each wait for their order, so they keep clients / latency orders/s going at most
# (Little's law): the partners add about 300 ms to every order, and the first phases' clients would then
# measure their own waiting, not the saga's saturation. The remote phases run this many times as many.
CLIENTS_FACTOR = 3


@dataclass(frozen=True)
class Latency:
    gateway_ms: int = 200
    data_platform_ms: int = 100


@dataclass
class RemoteRun:
    saga_closed: dict = field(default_factory=dict)  # phases.saga_closed_loop's figures
    saga_half: dict = field(default_factory=dict)  # phases.saga_half_load's
    monolith: dict = field(default_factory=dict)
    data_platform: dict = field(default_factory=dict)  # what it received, and the deliveries' state
    series: dict = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    unexpected_exits: list[str] = field(default_factory=list)


def run_remote_phases(
    environment: RunEnvironment,
    *,
    shop: dict,
    sizes: phases.Sizes,
    counters: redis.Redis,
    latency: Latency,
    say: Callable[[str], None],
) -> RemoteRun:
    result = RemoteRun()
    sizes = dataclasses.replace(sizes, clients=sizes.clients * CLIENTS_FACTOR)
    monolith_customers: list[Customer] = [*shop["monolith"], *shop["monolith_remote"]]
    log = environment.log_dir / "remote" / "data-platform.log"
    with running_data_platform(delay_ms=latency.data_platform_ms, log=log) as platform:
        remote = remote_environment(environment, gateway_ms=latency.gateway_ms, data_platform_url=platform.url)
        say(
            f"remote phases: a fleet with PAYMENT_LATENCY_MS={latency.gateway_ms}, DATA_PLATFORM_URL={platform.url} "
            f"(answering after {latency.data_platform_ms} ms)"
        )
        with running_fleet(remote) as fleet:
            groups = {**fleet.process_groups(), platform.pid: DATA_PLATFORM_PART}
            stage = phases.Stage(remote.api_url, shop["catalog"], sizes, counters, groups, say)
            result.saga_closed, result.series["saga_remote"] = phases.saga_closed_loop(
                stage, customers=shop["saga_remote"], label="saga remote"
            )
            result.saga_half, result.series["half_load_remote"] = phases.saga_half_load(
                api_url=remote.api_url,
                customers=shop["half_remote"],
                catalog=shop["catalog"],
                rate=max(0.5, result.saga_closed["orders_per_s"] / 2),
                seconds=sizes.half_load_window,
                say=say,
                label="saga remote",
            )
            result.monolith, result.series["monolith_remote"] = phases.monolith(
                stage, customers=shop["monolith_remote"], label="monolith remote"
            )
            users = [customer.id for customer in monolith_customers]
            deliveries = wait_delivered(users, say=say)
            result.violations = saga_violations(users)
            say(f"invariants of docs/design.md §5 after the remote phases: {len(result.violations) or 'none'} broken")
            result.unexpected_exits = fleet.unexpected_exits()
        result.data_platform = {"delay_ms": latency.data_platform_ms, **platform.received(), "deliveries": deliveries}
    return result
