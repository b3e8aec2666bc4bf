"""How a saga participant records what it did for an order, so that its step, confirm and undo are
each once-only.

Each participant (common.participants) owns a table of `OrderStepRecord`s: one row per order, keyed by
the order id. The row is written in the same transaction as the effect, so the database, not a check in
Python, decides that each phase of an order's step happens at most once:

    APPLIED      the step took effect (and its ledger rows say exactly what it did)
    REJECTED     the step was refused for a final reason (insufficient stock, ...)
    CONFIRMED    the order completed and the step was settled: a participant that reserves first and
                 settles on completion (reserve points, earn them) confirms on OrderCompleted
    COMPENSATED  the step was undone, or the undo arrived first and left a tombstone, so a late
                 step is refused instead of taking effect after its compensation.

A redelivered step reads the row and reports the same outcome again; a redelivered confirm finds the row
CONFIRMED and a redelivered undo finds it COMPENSATED, and neither does anything. An undo that overtakes
the confirm (a completed order cancelled at once) undoes the reservation, and the late confirm, finding
the row COMPENSATED, settles nothing.
"""

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from django.db import connection, models, transaction
from django.utils import timezone


class StepState(models.TextChoices):
    APPLIED = "APPLIED"
    REJECTED = "REJECTED"
    CONFIRMED = "CONFIRMED"
    COMPENSATED = "COMPENSATED"


class OrderStepRecord(models.Model):
    order_id = models.BigIntegerField(primary_key=True)
    state = models.CharField(max_length=16, choices=StepState.choices)
    reason = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"order {self.order_id}: {self.state}"


class StepRejected(Exception):
    """Raised by a step's effect to refuse it for a final reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class StepOutcome:
    succeeded: bool
    reason: str = ""
    repeated: bool = False  # this delivery found the step already decided


REFUSED_AFTER_COMPENSATION = "the order was already compensated"


def _outcome_of(record: OrderStepRecord, *, repeated: bool) -> StepOutcome:
    if record.state in (StepState.APPLIED, StepState.CONFIRMED):
        return StepOutcome(succeeded=True, repeated=repeated)
    reason = record.reason if record.state == StepState.REJECTED else REFUSED_AFTER_COMPENSATION
    return StepOutcome(succeeded=False, reason=reason, repeated=repeated)


def _insert_new(model: type[OrderStepRecord], order_ids: list[int], state: str, reason: str = "") -> set[int]:
    """One INSERT of a record in `state` for each order that has none; returns the orders inserted. The
    orders are inserted in order of id, so that two batches never deadlock."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_table(model)} (order_id, state, reason, created_at, updated_at)"
            " SELECT id, %s, %s, %s, %s FROM unnest(%s::bigint[]) AS id ORDER BY id"
            " ON CONFLICT (order_id) DO NOTHING RETURNING order_id",
            [state, reason, now, now, order_ids],
        )
        return {order_id for (order_id,) in cursor.fetchall()}


def _set_states(model: type[OrderStepRecord], state: str, reasons: Mapping[int, str]) -> None:
    """One UPDATE moving each order's record to `state` with its reason."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_table(model)} AS record SET state = %s, reason = given.reason, updated_at = %s"
            " FROM unnest(%s::bigint[], %s::varchar[]) AS given(order_id, reason)"
            " WHERE record.order_id = given.order_id",
            [state, timezone.now(), list(reasons), [reason[:255] for reason in reasons.values()]],
        )


def _table(model: type[OrderStepRecord]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def run_steps(
    model: type[OrderStepRecord], *, order_ids: Collection[int], apply: Callable[[list[int]], Mapping[int, str]]
) -> dict[int, StepOutcome]:
    """Run a step once per order, for many orders in a few statements whatever their number: one INSERT
    claims the records of the orders this participant has not seen; `apply(new_order_ids)` takes effect
    for each of them it does not refuse and returns the refused ones' reasons ({order id: reason}: a
    refused order must be left with no effect); one UPDATE records the refusals. The orders seen before
    are reported as their records say, repeated. Call inside `transaction.atomic()`, with the result
    events published in the same transaction so that they leave only if the records commit."""
    ordered = sorted(set(order_ids))
    new = _insert_new(model, ordered, StepState.APPLIED)
    refused = {order_id: reason[:255] for order_id, reason in apply(sorted(new)).items()} if new else {}
    if refused:
        _set_states(model, StepState.REJECTED, refused)
    outcomes = {
        order_id: StepOutcome(succeeded=order_id not in refused, reason=refused.get(order_id, "")) for order_id in new
    }
    seen_before = [order_id for order_id in ordered if order_id not in new]
    for record in model.objects.filter(order_id__in=seen_before) if seen_before else ():
        outcomes[record.order_id] = _outcome_of(record, repeated=True)
    return outcomes


def run_step(model: type[OrderStepRecord], *, order_id: int, apply: Callable[[], None]) -> StepOutcome:
    """Run `apply` once for the order; it raises StepRejected to refuse, and what it did before is then
    rolled back. Call inside `transaction.atomic()`, as `run_steps`."""

    def refusal(new: list[int]) -> dict[int, str]:
        try:
            with transaction.atomic():
                apply()
        except StepRejected as rejection:
            return {order_id: rejection.reason}
        return {}

    return run_steps(model, order_ids=[order_id], apply=refusal)[order_id]


def run_confirmation(model: type[OrderStepRecord], *, order_id: int, confirm: Callable[[], None]) -> bool:
    """Settle the order's step once the order has completed, if, and only if, this participant's record
    says the step took effect and was neither settled nor undone. Returns True when this call confirmed
    it. Call inside `transaction.atomic()`."""
    record = model.objects.select_for_update().filter(order_id=order_id).first()
    if record is None or record.state != StepState.APPLIED:
        return False  # never ran or refused (nothing to settle), already settled, or undone first
    confirm()
    _move(record, StepState.CONFIRMED, "confirmed")
    return True


def run_compensations(
    model: type[OrderStepRecord],
    *,
    order_ids: Collection[int],
    undo: Callable[[list[int]], None],
    undo_confirmed: Callable[[list[int]], None] | None = None,
) -> list[int]:
    """Undo the step of each order whose record says it took effect, once, for many orders in a few
    statements: one INSERT leaves a tombstone for each order whose step never ran (so that a late step
    is refused); one statement locks the records of the others that took effect; `undo(applied)` undoes
    the applied ones and `undo_confirmed(confirmed)` those settled by their confirm (a participant that
    confirms must say how to undo a settled step); one UPDATE records them all COMPENSATED. Returns the
    orders this call undid. Call inside `transaction.atomic()`."""
    ordered = sorted(set(order_ids))
    tombstoned = _insert_new(model, ordered, StepState.COMPENSATED, reason="compensated before the step ran")
    others = [order_id for order_id in ordered if order_id not in tombstoned]
    took_effect = dict(
        model.objects.select_for_update()
        .filter(order_id__in=others, state__in=(StepState.APPLIED, StepState.CONFIRMED))
        .order_by("order_id")
        .values_list("order_id", "state")
        if others
        else ()
    )
    applied = [order_id for order_id, state in took_effect.items() if state == StepState.APPLIED]
    confirmed = [order_id for order_id, state in took_effect.items() if state == StepState.CONFIRMED]
    if confirmed and undo_confirmed is None:
        raise TypeError(f"{model.__name__} of orders {confirmed} is confirmed: its undo needs undo_confirmed")
    if applied:
        undo(applied)
    if confirmed:
        undo_confirmed(confirmed)
    if took_effect:
        _set_states(model, StepState.COMPENSATED, dict.fromkeys(took_effect, "compensated"))
    return sorted(took_effect)


def run_compensation(
    model: type[OrderStepRecord],
    *,
    order_id: int,
    undo: Callable[[], None],
    undo_confirmed: Callable[[], None] | None = None,
) -> bool:
    """`run_compensations` for one order, its undos given without arguments; True when this call undid
    something."""
    undone = run_compensations(
        model,
        order_ids=[order_id],
        undo=lambda _: undo(),
        undo_confirmed=None if undo_confirmed is None else lambda _: undo_confirmed(),
    )
    return bool(undone)


def _move(record: OrderStepRecord, state: str, reason: str) -> None:
    record.state = state
    record.reason = reason
    record.save(update_fields=["state", "reason", "updated_at"])


def recorded_outcome(model: type[OrderStepRecord], *, order_id: int) -> StepOutcome | None:
    """What the participant's own records say of the order's step; None if it has not run."""
    record = model.objects.filter(order_id=order_id).first()
    return None if record is None else _outcome_of(record, repeated=True)
