"""After the load and the faults: wait for the saga to settle, check the invariants, report the figures.

Everything here reads the run's database through this process's Django (the ORM and
apps.orders.consistency, which gathers every app's checks and evidence).
"""

import json
import math
import re
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests
from django.core.serializers.json import DjangoJSONEncoder
from django.db import close_old_connections

UNDECIDED = ("CREATED", "PAYMENT_WAITING")
# Why an order failed, from words of its failure reason; a failed step's kind is its step's name.
OTHER_FAILURE_KINDS = (
    ("declined", "payment failed"),
    ("canceled", "payment canceled"),
    ("customer", "canceled by the customer"),
    ("deadline", "deadline"),
)


@dataclass
class Quiet:
    """How the system looked when the run stopped waiting for it."""

    undecided: int
    unhandled_outbox: int
    deliveries_missing: int

    @property
    def reached(self) -> bool:
        return not (self.undecided or self.unhandled_outbox or self.deliveries_missing)


def look() -> Quiet:
    from apps.dataplatform.models import Delivery, DeliveryStatus
    from apps.orders.models import Order, OrderStatus
    from eventbus.models import OutboxMessage

    close_old_connections()
    # A completed order has its completion delivered; a cancelled one, its completion and its cancellation.
    completed = Order.objects.filter(status=OrderStatus.COMPLETED).values("pk")
    canceled = Order.objects.filter(status=OrderStatus.CANCELED).values("pk")
    delivered = (DeliveryStatus.SENT, DeliveryStatus.RECORDED)  # sent to a platform, or recorded without one
    recorded = Delivery.objects.filter(order_id__in=completed.union(canceled), status__in=delivered).count()
    return Quiet(
        undecided=Order.objects.filter(status__in=UNDECIDED).count(),
        unhandled_outbox=OutboxMessage.objects.filter(handled_at__isnull=True, parked_at__isnull=True).count(),
        deliveries_missing=completed.count() + 2 * canceled.count() - recorded,
    )


@dataclass
class Settling:
    settled_at: float | None  # time.monotonic() when no order was undecided any more
    quiet_at: float | None  # ... and every outbox row handled (or parked) and every delivery recorded
    final: Quiet


def wait_to_settle(*, give_up_at: float, interval: float = 0.5) -> Settling:
    settled_at = None
    while True:
        now, state = time.monotonic(), look()
        if settled_at is None and not state.undecided:
            settled_at = now
        if state.reached:
            return Settling(settled_at=settled_at, quiet_at=now, final=state)
        if now > give_up_at:
            return Settling(settled_at=settled_at, quiet_at=None, final=state)
        time.sleep(interval)


def percentile(values: list[float], share: float, *, digits: int) -> float | None:
    """The value below which `share` of the values lie, by the nearest-rank method; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(share * len(ordered)) - 1)], digits)


def failure_kinds() -> tuple[tuple[str, str], ...]:
    """(kind, words of the failure reason) for each way an order fails, a failed step of each participant
    first. Asked after Django is set up: the participants are found among the installed apps."""
    from common.participants import step_names

    return tuple((step, f"{step} step failed") for step in step_names()) + OTHER_FAILURE_KINDS


def _failure_kind(reason: str) -> str:
    return "+".join(kind for kind, words in failure_kinds() if words in reason) or "other"


@dataclass
class Figures:
    seed: int
    broker: str  # what carried the messages: redis or amqp (RabbitMQ)
    posted: int  # orders the load POSTed
    orders: int  # orders the API created (201)
    refused: int
    completed: int
    failed: int
    canceled: int  # completed, then cancelled by their customer
    stuck: int
    violations: int
    violation_samples: list[str]
    monitor_findings: list[str]  # what the consistency monitor found while the run went on
    failed_by: dict[str, int]
    answers: dict[str, int]
    refusals: dict[str, int]
    cancel_answers: dict[str, int]  # the first answer to each cancel (202, or 409 for an order already ended)
    cancel_replays_wrong: list[str]
    server_errors: int
    faults: dict[str, int]
    fault_errors: list[str]
    recovery: list[dict[str, Any]]  # per fault: the orders in flight then, and when the last of them settled
    settle_seconds: dict[str, float | None]
    compensation_seconds: dict[str, float | None]  # from an OrderFailed / OrderCanceled to its listeners' end
    late_orders: int  # settled later than the deadline plus the sweep interval (§5.5), for information
    late_by: dict[str, int]  # their final status and failure kind
    parked_outbox: int
    unhandled_outbox: int
    deliveries_missing: int
    unexpected_exits: list[str]
    elapsed_seconds: float
    problems: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)  # the saga's lines of /metrics once the run settled

    @property
    def ok(self) -> bool:
        return not self.problems


def gather(
    *,
    seed: int,
    broker: str,
    load: Any,
    faults: Any,
    settling: Settling,
    deadline: float,
    sweep_interval: float,
    unexpected_exits: list[str],
    started_at: float,
    api_url: str | None = None,
) -> tuple[Figures, list[str], list[int]]:
    """The figures of the run, the full list of violations, and the ids of the stuck orders."""
    from apps.orders.consistency import violations
    from apps.orders.models import InvariantViolation, Order, OrderStatus
    from eventbus.models import OutboxMessage

    close_old_connections()
    found = violations()
    orders = list(Order.objects.values("pk", "status", "created_at", "completed_at", "failed_at", "failure_reason"))
    status = Counter(order["status"] for order in orders)
    ended = (OrderStatus.COMPLETED, OrderStatus.FAILED, OrderStatus.CANCELED)
    stuck = [order["pk"] for order in orders if order["status"] not in ended]
    took = [seconds for seconds in map(_took, orders) if seconds is not None]
    per_fault = [_recovery(fault, orders) for fault in faults.injected]
    late = [order for order in orders if (_took(order) or 0) > deadline + sweep_interval]
    last_fault = faults.last_at
    settle = {
        "after_last_fault": _since(last_fault, settling.settled_at),
        "quiet_after_last_fault": _since(last_fault, settling.quiet_at),
        "after_load_end": _since(load.ended_at, settling.settled_at),
        "order_p50": percentile(took, 0.5, digits=2),
        "order_p95": percentile(took, 0.95, digits=2),
        "order_max": round(max(took), 2) if took else None,
        "order_mean": round(statistics.fmean(took), 2) if took else None,
    }
    figures = Figures(
        seed=seed,
        broker=broker,
        posted=load.total,
        orders=len(orders),
        refused=load.answers[400],
        completed=status[OrderStatus.COMPLETED],
        failed=status[OrderStatus.FAILED],
        canceled=status[OrderStatus.CANCELED],
        stuck=len(stuck),
        violations=len(found),
        violation_samples=found[:10],
        monitor_findings=list(InvariantViolation.objects.order_by("pk").values_list("description", flat=True)),
        failed_by=dict(Counter(_failure_kind(o["failure_reason"]) for o in orders if o["status"] == "FAILED")),
        answers={str(answer): n for answer, n in sorted(load.answers.items(), key=str)},
        refusals=dict(load.refusals),
        cancel_answers={str(answer): n for answer, n in sorted(load.cancels.items(), key=str)},
        cancel_replays_wrong=load.replays_wrong[:10],
        server_errors=load.server_errors,
        faults=faults.counts(),
        fault_errors=faults.errors,
        recovery=per_fault,
        settle_seconds=settle,
        compensation_seconds=_compensation_seconds(),
        late_orders=len(late),
        late_by=dict(Counter(f"{order['status']} {_failure_kind(order['failure_reason'])}" for order in late)),
        parked_outbox=OutboxMessage.objects.filter(parked_at__isnull=False, handled_at__isnull=True).count(),
        unhandled_outbox=settling.final.unhandled_outbox,
        deliveries_missing=settling.final.deliveries_missing,
        unexpected_exits=unexpected_exits,
        elapsed_seconds=round(time.monotonic() - started_at, 1),
        metrics=scraped_saga_metrics(api_url) if api_url else [],
    )
    figures.problems = _problems(figures, load, faults)
    return figures, found, stuck


# The lines of /metrics that tell the saga's story (histogram buckets left out: their sum and count stay).
SAGA_METRICS = re.compile(r"^(saga_|outbox_|circuit_breaker_state|celery_tasks_total\{.*outcome=\"(failed|retried)\")")


def scraped_saga_metrics(api_url: str) -> list[str]:
    """What a dashboard would show of the run: the fleet's /metrics, read from its API."""
    try:
        text = requests.get(f"{api_url}/metrics", timeout=10).text
    except requests.RequestException as error:
        return [f"/metrics could not be read: {error}"]
    return [line for line in text.splitlines() if SAGA_METRICS.match(line) and "_bucket{" not in line]


def _compensation_seconds() -> dict[str, float | None]:
    """How long after an order's OrderFailed or OrderCanceled was published each of its listeners (the
    compensations, the payment's cancel, the rank, the platform) had done its work: p50, p95 and max over
    every such row, so that lost messages show as a long tail."""
    from eventbus.models import OutboxMessage

    rows = OutboxMessage.objects.filter(
        event_type__in=("OrderFailed", "OrderCanceled"), handled_at__isnull=False
    ).values_list("created_at", "handled_at")
    took = [(handled - created).total_seconds() for created, handled in rows]
    return {
        "p50": percentile(took, 0.5, digits=2),
        "p95": percentile(took, 0.95, digits=2),
        "max": round(max(took), 2) if took else None,
    }


def _took(order: dict[str, Any]) -> float | None:
    """Seconds from an order's creation to its completion or failure; None while it is undecided."""
    settled = order["completed_at"] or order["failed_at"]
    return (settled - order["created_at"]).total_seconds() if settled else None


def _recovery(fault: Any, orders: list[dict[str, Any]]) -> dict[str, Any]:
    """The orders in flight while the fault lasted (created before its end, settled after its start: a
    broker restart lasts seconds, and the orders placed meanwhile count), and how long after the fault
    was over the last of them settled."""
    settled = [(order["completed_at"] or order["failed_at"]) for order in orders if order["created_at"] < fault.ended]
    after = [moment for moment in settled if moment is None or moment > fault.wall]
    last = None if None in after or not after else max(after)
    return {
        "kind": fault.kind,
        "at_progress": round(fault.at_progress, 2),
        "lasted": round((fault.ended - fault.wall).total_seconds(), 2),
        "in_flight": len(after),
        "settled_within": round((last - fault.ended).total_seconds(), 2) if last else None,
    }


def _since(start: float | None, end: float | None) -> float | None:
    return round(end - start, 2) if start is not None and end is not None else None


def _problems(figures: Figures, load: Any, faults: Any) -> list[str]:
    problems = []
    if figures.stuck:
        problems.append(f"{figures.stuck} orders stuck")
    if figures.violations:
        problems.append(f"{figures.violations} invariant violations")
    if figures.monitor_findings:
        found = figures.monitor_findings
        problems.append(f"the consistency monitor found {len(found)}: {found[:3]}")
    if figures.server_errors:
        problems.append(f"{figures.server_errors} API answers were 5xx or failed connections: {load.errors[:3]}")
    if figures.cancel_replays_wrong:
        problems.append(f"repeated cancels not replayed: {figures.cancel_replays_wrong[:3]}")
    if figures.orders != load.answers[201]:
        problems.append(f"the API created {load.answers[201]} orders but the database holds {figures.orders}")
    if len(faults.injected) != len(faults.schedule):
        problems.append(f"only {len(faults.injected)} of {len(faults.schedule)} faults injected: {faults.errors}")
    if figures.unexpected_exits:
        problems.append(f"processes exited by themselves: {figures.unexpected_exits}")
    return problems


def print_summary(figures: Figures) -> None:
    settle, compensated = figures.settle_seconds, figures.compensation_seconds
    lines = [
        "",
        "=== chaos run ===",
        f"broker            {figures.broker}",
        f"orders posted     {figures.posted}",
        f"orders placed     {figures.orders}  (refused with 400: {figures.refused} {figures.refusals or ''})",
        f"completed         {figures.completed}",
        f"failed            {figures.failed}  {figures.failed_by}",
        f"canceled          {figures.canceled}  (cancels answered {figures.cancel_answers}, each sent twice)",
        f"stuck             {figures.stuck}",
        f"violations        {figures.violations}",
        *(f"    {violation}" for violation in figures.violation_samples[:5]),
        f"monitor findings  {len(figures.monitor_findings)}",
        f"API answers       {figures.answers}  (5xx / connection errors: {figures.server_errors})",
        f"faults injected   {figures.faults}",
        *(
            f"    {r['kind']:7} at {r['at_progress']:4.0%}"
            + (f", lasting {r['lasted']} s" if r["lasted"] >= 1 else "")
            + f": {r['in_flight']} orders in flight"
            + (f", the last settled {r['settled_within']} s after it" if r["in_flight"] else "")
            for r in figures.recovery
        ),
        f"settled           {settle['after_last_fault']} s after the last fault "
        f"({settle['after_load_end']} s after the last order); quiet {settle['quiet_after_last_fault']} s after it",
        f"per order         p50 {settle['order_p50']} s, p95 {settle['order_p95']} s, max {settle['order_max']} s "
        f"({figures.late_orders} took longer than deadline + sweep interval)",
        f"compensations     done p50 {compensated['p50']} s, p95 {compensated['p95']} s, max {compensated['max']} s "
        "after their OrderFailed / OrderCanceled",
        f"elapsed           {figures.elapsed_seconds} s",
        "/metrics once settled:",
        *(f"    {line}" for line in figures.metrics),
    ]
    if figures.parked_outbox:
        lines.append(f"WARNING: {figures.parked_outbox} outbox rows are parked")
    if figures.unhandled_outbox:
        lines.append(f"WARNING: {figures.unhandled_outbox} outbox rows were still unhandled when the run stopped")
    if figures.late_orders:
        lines.append(
            f"WARNING: {figures.late_orders} orders settled later than the deadline plus the sweep interval "
            f"{figures.late_by}"
        )
    if figures.deliveries_missing:
        lines.append(f"WARNING: {figures.deliveries_missing} deliveries of completed or cancelled orders missing")
    lines += [f"FAILED: {problem}" for problem in figures.problems] or ["OK: 0 stuck, 0 violations"]
    print("\n".join(lines), flush=True)
    summary = {key: value for key, value in asdict(figures).items() if key != "problems"}
    print(json.dumps({"chaos_summary": True, "ok": figures.ok, **summary, "problems": figures.problems}), flush=True)


def save_evidence(*, found: list[str], stuck: list[int], log_dir: Path, limit: int = 20) -> Path:
    """Everything the database knows of the orders named in violations or stuck: what each app's tables
    say of each (apps.orders.consistency.order_evidence): the order, its outbox rows, the participants'
    step records and ledgers, its payment and delivery."""
    from apps.orders.consistency import order_evidence

    named = {int(number) for violation in found for number in re.findall(r"order (\d+)", violation)}
    order_ids = sorted(set(stuck) | named)[:limit]
    evidence = {
        "violations": found,
        "stuck": stuck,
        "orders": {order_id: order_evidence(order_id) for order_id in order_ids},
    }
    path = log_dir / f"evidence-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(evidence, cls=DjangoJSONEncoder, indent=1, default=str))
    return path
