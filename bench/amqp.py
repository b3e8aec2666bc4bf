"""The saga on RabbitMQ: the same closed loop as the first fleet's saga phase, on a fleet whose messages go
through RabbitMQ (publisher confirms, durable queues: common/broker_options.py) instead of the run's Redis db.

The fleet's processes read their broker from the environment when they start, so this phase runs on a
fleet of its own (the Procfile's, like the others), started once the remote phases' has stopped, with the
first fleet's partners (a gateway and deliveries without latency) and its clients, so that its figures
stand beside the Redis saga's. The benchmark's vhost is recreated first, so that no message of a past run
is in it. Then every order is waited for and docs/design.md §5 checked again.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from bench import phases
from bench.environment import amqp_environment, bench_vhost
from bench.settled import saga_violations, wait_delivered
from chaos import rabbitmq
from chaos.environment import RunEnvironment
from chaos.runner import running_fleet


@dataclass
class AmqpRun:
    saga_closed: dict = field(default_factory=dict)  # phases.saga_closed_loop's figures
    vhost: str = ""
    series: dict = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    unexpected_exits: list[str] = field(default_factory=list)


def run_amqp_phase(
    environment: RunEnvironment,
    *,
    shop: dict,
    sizes: phases.Sizes,
    counters: redis.Redis,
    monolith_users: list[int],
    say: Callable[[str], None],
) -> AmqpRun:
    """`monolith_users`: every monolith customer of the run, whose orders published no events (§5.4)."""
    result = AmqpRun(vhost=bench_vhost(environment))
    say(f"saga on RabbitMQ: recreating vhost {result.vhost}")
    rabbitmq.fresh_vhost(result.vhost)
    amqp = amqp_environment(environment)
    with running_fleet(amqp) as fleet:
        stage = phases.Stage(amqp.api_url, shop["catalog"], sizes, counters, fleet.process_groups(), say)
        result.saga_closed, result.series["saga_amqp"] = phases.saga_closed_loop(
            stage, customers=shop["saga_amqp"], label="saga on RabbitMQ"
        )
        wait_delivered(monolith_users, say=say)
        result.violations = saga_violations(monolith_users)
        say(f"invariants of docs/design.md §5 after the saga on RabbitMQ: {len(result.violations) or 'none'} broken")
        result.unexpected_exits = fleet.unexpected_exits()
    return result
