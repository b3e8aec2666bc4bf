"""The saga's participants, each declared once by its own app (docs/design.md §1).

An app that runs a step of the order saga says so in its `participant.py`:

    PARTICIPANT = Participant(
        step="balance",                 # its field in the process hash and its key in the API's `steps`
        succeeded=BalanceUsed,          # the events that report its step; the orders app records them
        failed=BalanceUseFailed,
        record=BalanceStep,             # its step records (common.steps): what recovery reads after a crash
        effect=take_total,              # the step's effect alone, raising StepRejected to refuse
        confirm=None,                   # or its settlement when the order completes (reserve, then earn)
        applies=None,                   # or a test of the order being created: does this step concern it?
    )

Everything the orchestrator needs is derived from these declarations: the process hash's fields, which
events are step results, how recovery rebuilds a lost hash, which steps an order waits for. The route
table (config/event_routes.py) stays the one place that says which task runs on which event.

A participant whose step does not apply to an order (no coupon to use; no points account) runs no task
for it and counts as SUCCESS, the way docs/design.md §2 counts an order without a coupon. Which
participants take part is decided once, when the order is created, and travels in the order's events.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from common.app_hooks import app_modules, per_installed_apps
from common.steps import OrderStepRecord, StepOutcome, recorded_outcome


@dataclass(frozen=True)
class Participant:
    step: str
    succeeded: type
    failed: type
    record: type[OrderStepRecord]
    # The step's effect on the participant's own tables for an order (an OrderCreated), without its step
    # record or events: the saga runs it through common.steps, the benchmark's monolith runs it directly.
    effect: Callable[[Any], None]
    # For a participant that reserves first and settles when the order completes: the settlement alone,
    # given the order's OrderCompleted (the saga runs it once through common.steps.run_confirmation).
    confirm: Callable[[Any], None] | None = None
    # Asked once, in the creating transaction, with the order being created (user_id, user_coupon_id,
    # total_price); None: the step applies to every order. It may read the participant's own tables.
    applies: Callable[[Any], bool] | None = None

    def applies_to(self, order: Any) -> bool:
        return self.applies is None or bool(self.applies(order))

    def recorded_outcome(self, *, order_id: int) -> StepOutcome | None:
        """What this participant's own records say of the order's step; None if it has not run."""
        return recorded_outcome(self.record, order_id=order_id)


@per_installed_apps
def participants() -> tuple[Participant, ...]:
    """Every installed participant, by step name."""
    declared = [module.PARTICIPANT for _, module in app_modules("participant")]
    names = [participant.step for participant in declared]
    if len(set(names)) != len(names):
        raise ValueError(f"two participants declare the same step: {sorted(names)}")
    return tuple(sorted(declared, key=lambda participant: participant.step))


def participant(step: str) -> Participant:
    for candidate in participants():
        if candidate.step == step:
            return candidate
    raise LookupError(f"no participant runs the step {step!r}")


def step_names() -> tuple[str, ...]:
    return tuple(participant.step for participant in participants())


def participants_of(order: Any) -> tuple[str, ...]:
    """The steps that concern an order being created, asked of each participant."""
    return tuple(participant.step for participant in participants() if participant.applies_to(order))


@per_installed_apps
def step_results() -> dict[type, tuple[str, bool]]:
    """Each result event's step and whether it reports success."""
    results = {}
    for each in participants():
        results[each.succeeded] = (each.step, True)
        results[each.failed] = (each.step, False)
    return results


def takes_part(step: str) -> Callable[[Any], bool]:
    """For the route table: a test of an order's event (OrderCreated, OrderFailed, OrderCanceled,
    OrderCompleted) that is true when the order runs `step`, so that a listener of a participant whose
    step does not concern the order costs no task (eventbus.only_if)."""

    def wants(event: Any) -> bool:
        return step in event.participants

    wants.__name__ = f"takes_part_{step}"
    return wants


def implied_steps(states: dict[str, str], taking_part: Iterable[str], *, success: str, pending: str) -> dict[str, str]:
    """The steps of an order as the saga judges them: a step that does not concern it and never reported
    counts as `success`; a step that did report is taken at its word."""
    taking_part = set(taking_part)
    return {step: success if state == pending and step not in taking_part else state for step, state in states.items()}
