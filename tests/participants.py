"""What the tests know of the saga's participants, read from their declarations (common.participants) and
the active route table, never spelled out: the suite runs with a fourth participant installed
(tests/loyalty), and a new one must not need a test changed."""

from importlib import import_module

from django.conf import settings

from apps.orders.events import OrderCreated
from apps.orders.models import Order
from apps.orders.services import order_record_step
from common.participants import participant, step_names
from common.steps import StepOutcome
from eventbus.bus import as_listener, dispatch
from eventbus.events import event_from_envelope
from eventbus.models import OutboxMessage
from eventbus.routing import Listener


def all_steps(state: str = "SUCCESS", **states: str) -> dict[str, str]:
    """Every participant's step in `state`, except those named: all_steps(stock="FAILED")."""
    unknown = set(states) - set(step_names())
    assert not unknown, f"no participant runs {unknown}"
    return {step: states.get(step, state) for step in step_names()}


def record_every_step(order: Order) -> str | None:
    """Report every step that concerns the order as a success to the orders app, as its participants
    would; returns the decision, made by the last report."""
    order.refresh_from_db(fields=["participants"])
    decisions = [order_record_step(order_id=order.pk, step=step, succeeded=True) for step in order.participants]
    return decisions[-1] if decisions else None


def run_every_step(order: Order) -> dict[str, StepOutcome]:
    """Run, in this process and one after the other, every step listener that the order's OrderCreated
    dispatched (its envelope is read from the outbox), as a worker would; returns each step's outcome as
    its participant recorded it. The results the steps publish wait in the broker."""
    envelope = OutboxMessage.objects.filter(order_id=order.pk, event_type="OrderCreated").first().envelope
    event = event_from_envelope(envelope)
    for listener in listeners_of(OrderCreated):
        if listener.wants(event):
            listener.task(envelope)
    return {step: participant(step).recorded_outcome(order_id=order.pk) for step in event.participants}


def deliver_again(envelopes: list[dict], event_types: tuple[type, ...] | None = None) -> int:
    """Send each envelope (of the given types, or all) to all its listeners again, through the broker;
    returns the count. Their outbox rows are first made unhandled, as if each worker had died after its
    work but before its mark: a delivery of a handled row would run nothing, and the listeners' own
    once-only records are what this tests."""
    sent = 0
    for envelope in envelopes:
        event_class = type(event_from_envelope(envelope))
        if event_types is None or event_class in event_types:
            OutboxMessage.objects.filter(event_id=envelope["event_id"]).update(handled_at=None)
            for listener in listeners_of(event_class):
                dispatch(listener.task, envelope)
                sent += 1
    return sent


def routes() -> dict:
    """The route table the suite runs with (EVENT_ROUTES_MODULE)."""
    return import_module(settings.EVENT_ROUTES_MODULE).ROUTES


def listeners_of(event_class: type) -> list[Listener]:
    return [as_listener(route) for route in routes()[event_class]]
