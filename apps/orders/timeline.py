"""An order's timeline for operators: "what happened to order 42?", from every place that keeps a trace
of it, in one list, oldest first (docs/design.md §7).

- the event history (eventbus.EventRecord): the order's creation, every step's report, the decision, the
  payment, completion, the compensations, the cancel; and the recovery sweep's actions, which are the
  events it publishes (see `_origin`);
- the participants' step records (common.steps): each step applied, rejected, confirmed, undone;
- the ledgers the steps wrote: balance transactions, stock movements, the order's coupon;
- the payment (its gateway reference or its failure) and the deliveries to the data platform;
- the outbox: every listener's dispatches, errors and parking;
- admin's history (LogEntry): what operators did to the order and to every row above.

It reads the other apps' tables directly and only reads them: it is the operators' view across the saga,
as admin is. One query per source, whatever the order holds. The live process hash is read from Redis
while the order runs, beside the steps the order stored when it was decided.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import Model, Q
from django.urls import reverse
from django.utils import timezone
from redis.exceptions import RedisError

from apps.balance.models import BalanceTransaction, TransactionKind
from apps.coupons.models import UserCoupon
from apps.dataplatform.models import Delivery, DeliveryStatus
from apps.orders.models import Order, OrderStatus
from apps.orders.process import PENDING, process_key
from apps.orders.services.recovery import DEADLINE_REASON, UNPAID_REASON
from apps.orders.tasks import record_step_result_task
from apps.payments.models import Payment
from apps.products.models import MovementKind, StockMovement
from common.participants import participants, step_results
from common.redis import redis_client
from common.steps import OrderStepRecord, StepState
from eventbus.models import EventRecord, OutboxMessage
from eventbus.selectors import messages_of_order, order_history

RUNNING = (OrderStatus.CREATED, OrderStatus.PAYMENT_WAITING)
UNDONE = "UNDONE"

# What happened first when two entries share an instant: a transaction writes its step record, then its
# ledger rows, then publishes its events; listeners, deliveries and operators come after.
_TIE_ORDER = ("step", "ledger", "event", "payment", "listener", "delivery", "operator")


def millis(at: datetime) -> str:
    """A time in the site's time zone, to the millisecond: 2026-12-04 19:45:26.123."""
    local = timezone.localtime(at)
    return f"{local:%Y-%m-%d %H:%M:%S}.{local.microsecond // 1000:03d}"


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str  # one of _TIE_ORDER
    what: str
    source: str
    details: str = ""
    links: tuple[Link, ...] = ()

    @property
    def at_text(self) -> str:
        return millis(self.at)


@dataclass(frozen=True)
class StepRow:
    step: str
    live: str | None  # the process hash in Redis (None: not read, the order is settled)
    stored: str | None  # what the order stored when it was decided (None: not decided yet)
    record: str  # the participant's own record: APPLIED, REJECTED, CONFIRMED, UNDONE, or none yet
    concerned: bool = True  # False: the step does not concern the order (no coupon to use) and counts as done


@dataclass(frozen=True)
class Process:
    """The saga's state of the order's steps, side by side: the live hash, the stored outcome, the
    participants' records."""

    steps: tuple[StepRow, ...]
    live: bool  # the hash was read (the order runs)
    note: str = ""  # why there is no live hash, when there is none
    expires_in: int | None = None  # seconds left on the hash


@dataclass(frozen=True)
class Timeline:
    order: Order
    entries: tuple[Entry, ...]
    process: Process
    related: tuple[Link, ...] = ()


def order_timeline(order: Order) -> Timeline:
    """Everything that happened to the order, oldest first, in a fixed number of queries."""
    events = list(order_history(order_id=order.pk))
    messages = list(messages_of_order(order_id=order.pk))
    records = step_records(order.pk)
    transactions = list(BalanceTransaction.objects.filter(order_id=order.pk).order_by("pk"))
    movements = list(StockMovement.objects.filter(order_id=order.pk).select_related("product").order_by("pk"))
    coupon = (
        UserCoupon.objects.filter(pk=order.user_coupon_id).select_related("coupon").first()
        if order.user_coupon_id
        else None
    )
    payment = Payment.objects.filter(order_id=order.pk).first()
    deliveries = list(Delivery.objects.filter(order_id=order.pk).order_by("pk"))

    entries = [
        *_event_entries(order, events, payment),
        *_step_entries(records, coupon),
        *_ledger_entries(transactions, movements, coupon),
        *_payment_entries(payment),
        *_delivery_entries(deliveries),
        *_listener_entries(messages),
    ]
    if not any(event.event_type == "OrderCreated" for event in events):
        # Past the history's retention the order's own row still says when it was placed.
        entries.append(Entry(order.created_at, "event", "Order placed", "orders (the order's row)"))
    rows: list[Model] = [order, *messages, *records.values(), *transactions, *movements, *deliveries]
    if payment is not None:
        rows.append(payment)
    entries += _operator_entries(rows)
    entries.sort(key=lambda entry: (entry.at, _TIE_ORDER.index(entry.kind)))
    return Timeline(
        order=order,
        entries=tuple(entries),
        process=order_process(order, records, messages),
        related=related_links(order),
    )


def step_records(order_id: int) -> dict[str, OrderStepRecord]:
    """Each participant's record of the order's step, by step name (one query per participant)."""
    found = {}
    for each in participants():
        record = each.record.objects.filter(order_id=order_id).first()
        if record is not None:
            found[each.step] = record
    return found


def is_tombstone(record: OrderStepRecord) -> bool:
    """A record born COMPENSATED: the undo arrived before the step ran (one INSERT wrote both its times),
    and the late step was refused."""
    return record.state == StepState.COMPENSATED and record.created_at == record.updated_at


def record_state(record: OrderStepRecord | None) -> str:
    """A step as its participant's record says: an undone step reads UNDONE, never SUCCESS."""
    if record is None:
        return "none yet"
    return UNDONE if record.state == StepState.COMPENSATED else record.state


def displayed_steps(saga_steps: dict[str, str], records: dict[str, OrderStepRecord]) -> dict[str, str]:
    """The saga's view of each step (the hash, or the stored outcome), except that a step its
    participant has since undone reads UNDONE: the order's stored SUCCESS was true when it was decided."""
    return {
        step: UNDONE if step in records and records[step].state == StepState.COMPENSATED else state
        for step, state in saga_steps.items()
    }


def order_process(order: Order, records: dict[str, OrderStepRecord], messages: Iterable[OutboxMessage] = ()) -> Process:
    """The live process hash beside the stored steps and the records. The hash is read only while the
    order runs: after that the stored outcome is the saga's word and the hash expires."""
    stored = order.steps or {}
    steps = sorted({each.step for each in participants()} | set(stored))
    live: dict[str, str] | None = None
    note, expires_in = "", None
    if order.status in RUNNING:
        try:
            live, expires_in = _read_hash(order.pk)
        except RedisError as error:
            note = f"Redis cannot be read ({type(error).__name__}: {error}): the live steps are unknown."
        else:
            if live is None:
                note = _missing_hash(order, messages)
    rows = tuple(
        StepRow(
            step=step,
            live=None if live is None else live.get(step, PENDING),
            stored=stored.get(step) if order.steps is not None else None,
            record=record_state(records.get(step)),
            concerned=step in order.taking_part,
        )
        for step in steps
    )
    return Process(steps=rows, live=live is not None, note=note, expires_in=expires_in)


def _read_hash(order_id: int) -> tuple[dict[str, str] | None, int | None]:
    """The hash's fields (a failed step with its reason) and its TTL; None when Redis has no hash."""
    pipe = redis_client().pipeline(transaction=False)
    pipe.hgetall(process_key(order_id))
    pipe.ttl(process_key(order_id))
    raw, ttl = pipe.execute()
    if not raw:
        return None, None
    fields = {key.decode(): value.decode() for key, value in raw.items()}
    live = {}
    for name, value in fields.items():
        if name.endswith("_reason"):
            continue
        reason = fields.get(f"{name}_reason")
        live[name] = f"{value}: {reason}" if reason else value
    return live, ttl if ttl and ttl > 0 else None


def _missing_hash(order: Order, messages: Iterable[OutboxMessage]) -> str:
    """Why a running order has no hash: no step result recorded yet, or Redis lost it."""
    recorded = [m for m in messages if m.listener == record_step_result_task.name and m.handled_at]
    if recorded:
        return (
            f"Redis has no process hash although {len(recorded)} step result(s) were recorded in it: Redis lost "
            "it (flushed or restarted). The recovery sweep rebuilds it from the participants' step records."
        )
    if order.status == OrderStatus.PAYMENT_WAITING:
        return "Redis has no process hash: it expired or Redis lost it. The stored steps are the decision's."
    return "Redis has no process hash yet: no step result has been recorded."


def related_links(order: Order) -> tuple[Link, ...]:
    """Links from the order to every row of it in admin: lists narrowed to the order, so no query."""
    return _links(
        _list_link("ledger rows", BalanceTransaction, order.pk),
        _list_link("stock movements", StockMovement, order.pk),
        _change_link("coupon", UserCoupon, order.user_coupon_id) if order.user_coupon_id else None,
        _list_link("payment", Payment, order.pk),
        _list_link("deliveries", Delivery, order.pk),
        *(_list_link(f"{each.step} step record", each.record, order.pk) for each in participants()),
        _list_link("outbox rows", OutboxMessage, order.pk),
        _list_link("events", EventRecord, order.pk),
    )


def _registered(model: type[Model]) -> bool:
    return admin.site.is_registered(model)


def _change_link(label: str, model: type[Model], pk) -> Link | None:
    if not _registered(model):
        return None
    opts = model._meta
    return Link(label, reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk]))


def _list_link(label: str, model: type[Model], order_id: int) -> Link | None:
    """The model's admin list narrowed to the order's rows (every such model keeps an `order_id`)."""
    if not _registered(model):
        return None
    opts = model._meta
    return Link(label, f"{reverse(f'admin:{opts.app_label}_{opts.model_name}_changelist')}?order_id__exact={order_id}")


def _links(*links: Link | None) -> tuple[Link, ...]:
    return tuple(link for link in links if link is not None)


# -- the event history --------------------------------------------------------------------------------

_EVENT_WORDS = {
    "OrderCreated": "Order placed",
    "OrderPaymentWaited": "Decision: every step succeeded, waiting for payment",
    "PaymentPaid": "Payment paid",
    "PaymentFailed": "Payment failed",
    "PaymentCanceled": "Payment cancelled at the gateway",
    "OrderCompleted": "Order completed",
    "OrderCompleteFailed": "Completion refused: the order can no longer be completed",
    "OrderCanceled": "Completed order cancelled: everything it took is given back",
    "BalanceRefunded": "Compensation: balance refunded",
    "CouponRestored": "Compensation: coupon given back",
    "StockRestored": "Compensation: stock restored",
}
_SKIPPED_DATA = {"order_id", "user_id", "participants", "items", "created_at", "completed_at", "canceled_at"}


def _event_entries(order: Order, events: list[EventRecord], payment: Payment | None) -> list[Entry]:
    types = {event.event_id: event.event_type for event in events}
    results = {event_class.__name__: result for event_class, result in step_results().items()}
    entries = []
    for event in events:
        what, origin = _words(event, types.get(event.causation_id), results)
        details = _data_details(event)
        if event.event_type == "PaymentPaid" and payment is not None and payment.gateway_reference:
            details = _join(details, f"gateway reference {payment.gateway_reference}")
        links = _links(
            _change_link("event", EventRecord, event.pk),
            _change_link("payment", Payment, event.data["payment_id"]) if event.data.get("payment_id") else None,
            _change_link("coupon", UserCoupon, event.data["user_coupon_id"])
            if event.data.get("user_coupon_id")
            else None,
        )
        source = f"{event.source} · {event.event_type}" + (f" ({origin})" if origin else "")
        entries.append(Entry(event.occurred_at, "event", what, source, details, links))
    return entries


def _words(event: EventRecord, cause: str | None, results: dict[str, tuple[str, bool]]) -> tuple[str, str]:
    """What the event says happened, and who published it when no listener did (`_origin`)."""
    if event.event_type in results:
        step, succeeded = results[event.event_type]
        return f"{step.capitalize()} step reported {'SUCCESS' if succeeded else 'FAILED'}", ""
    origin = _origin(event)
    if event.event_type == "OrderFailed":
        reason = event.data.get("reason", "")
        if cause in results:
            return "Decision: a step failed, the order failed", ""
        if cause in ("PaymentFailed", "PaymentCanceled"):
            return "Order failed: its payment did not go through", ""
        if reason.startswith("canceled by"):
            return "Order cancelled before completion: failed and compensated", origin
        if reason == DEADLINE_REASON:
            return "Recovery sweep: failed at the saga's deadline, undecided", origin
        if reason == UNPAID_REASON:
            return "Recovery sweep: failed at the saga's deadline, unpaid", origin
        return "Recovery sweep: decided from the step records, a step failed", origin
    if event.event_type == "OrderPaymentWaited" and origin:
        return "Recovery sweep: decided from the step records, every step succeeded", origin
    if event.event_type == "OrderCompleted" and origin:
        return "Recovery sweep: the payment had succeeded, order completed", origin
    return _EVENT_WORDS.get(event.event_type, event.event_type), origin


def _origin(event: EventRecord) -> str:
    """Who published an event that no listener published (it has no cause, docs/design.md §3). The API
    places and cancels orders (an operator's cancel says so in its reason, and is in admin's history);
    every other causeless decision, completion or failure is the recovery sweep's: it rebuilds a lost
    process hash from the step records and decides, fails undecided and unpaid orders at the deadline,
    and completes the paid ones."""
    if event.causation_id is not None:
        return ""
    if event.event_type == "OrderCreated":
        return "the API"
    reason = event.data.get("reason", "")
    if event.event_type == "OrderCanceled" or reason.startswith("canceled by"):
        return reason
    if event.event_type in ("OrderPaymentWaited", "OrderFailed", "OrderCompleted"):
        return "recovery sweep"
    return ""


def _data_details(event: EventRecord) -> str:
    data = event.data
    parts = [f"reason: {data['reason']}"] if data.get("reason") else []
    for key, value in data.items():
        if key in _SKIPPED_DATA or key == "reason" or value is None:
            continue
        shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
        parts.append(f"{key.replace('_', ' ')} {shown}")
    if data.get("items"):
        lines = ", ".join(f"{item['quantity']} × #{item['product_id']}" for item in data["items"])
        parts.append(f"items {lines}")
    if event.event_type == "OrderCreated" and data.get("participants") is not None:
        parts.append(f"steps {', '.join(data['participants']) or 'none'}")
    return ", ".join(parts)


# -- the participants' step records -------------------------------------------------------------------


def _step_entries(records: dict[str, OrderStepRecord], coupon: UserCoupon | None) -> list[Entry]:
    entries = []
    for step, record in records.items():
        source = f"{step} · step record"
        links = _links(
            _change_link("step record", type(record), record.pk),
            _change_link("coupon", UserCoupon, coupon.pk) if step == "coupon" and coupon else None,
        )
        name = step.capitalize()

        def entry(at: datetime, what: str, details: str = "", *, _source=source, _links=links) -> Entry:
            return Entry(at, "step", what, _source, details, _links)

        if is_tombstone(record):
            entries.append(entry(record.created_at, f"{name} step undone before it ran: a late step is refused"))
        elif record.state == StepState.REJECTED:
            entries.append(entry(record.created_at, f"{name} step rejected", record.reason))
        else:
            entries.append(entry(record.created_at, f"{name} step applied"))
            if record.state == StepState.CONFIRMED:
                entries.append(entry(record.updated_at, f"{name} step confirmed: settled on completion"))
            elif record.state == StepState.COMPENSATED:
                entries.append(entry(record.updated_at, f"{name} step undone", record.reason))
    return entries


# -- ledgers, payment, deliveries ---------------------------------------------------------------------


def _ledger_entries(
    transactions: list[BalanceTransaction], movements: list[StockMovement], coupon: UserCoupon | None
) -> list[Entry]:
    entries = []
    for row in transactions:
        verb = "used" if row.kind == TransactionKind.USE else "refunded"
        entries.append(
            Entry(
                row.created_at,
                "ledger",
                f"Balance {verb}: {row.amount:,} won",
                "balance · ledger",
                f"{row.kind}, balance after {row.balance_after:,} won",
                _links(_change_link(f"ledger row {row.pk}", BalanceTransaction, row.pk)),
            )
        )
    for row in movements:
        verb = "deducted" if row.kind == MovementKind.DEDUCT else "restored"
        entries.append(
            Entry(
                row.created_at,
                "ledger",
                f"Stock {verb}: {abs(row.delta)} × {row.product.name}",
                "products · stock movements",
                f"{row.kind} {row.delta:+d} of product {row.product_id}",
                _links(_change_link(f"movement {row.pk}", StockMovement, row.pk)),
            )
        )
    if coupon is not None and coupon.used_at is not None:
        # Only while the order holds it: giving it back clears its use (the coupon step's record says when).
        entries.append(
            Entry(
                coupon.used_at,
                "ledger",
                f"Coupon used: {coupon.coupon}",
                "coupons · user coupon",
                f"user coupon {coupon.pk}, {coupon.status}",
                _links(_change_link("coupon", UserCoupon, coupon.pk)),
            )
        )
    return entries


def _payment_entries(payment: Payment | None) -> list[Entry]:
    """The payment's opening; its outcome is its event (PaymentPaid, PaymentFailed, PaymentCanceled)."""
    if payment is None:
        return []
    details = f"{payment.amount:,} won, now {payment.status}"
    if payment.gateway_reference:
        details += f", gateway reference {payment.gateway_reference}"
    if payment.failure_reason:
        details += f", {payment.failure_reason}"
    link = _links(_change_link(f"payment {payment.pk}", Payment, payment.pk))
    return [Entry(payment.created_at, "payment", "Payment started at the gateway", "payments", details, link)]


def _delivery_entries(deliveries: list[Delivery]) -> list[Entry]:
    """Each delivery's record and where it stands. Its tries are counted (`attempts`), with the last
    error: the tries themselves have no rows, and the listener's outbox row shows their dispatches."""
    entries = []
    for delivery in deliveries:
        links = _links(_change_link(f"delivery {delivery.pk}", Delivery, delivery.pk))
        source = "dataplatform · delivery"
        tries = f"{delivery.attempts} attempt(s)"
        entries.append(
            Entry(
                delivery.created_at,
                "delivery",
                f"Delivery of {delivery.event_type} to the data platform recorded",
                source,
                "",
                links,
            )
        )
        if delivery.status == DeliveryStatus.SENT:
            what, at, details = "Delivered to the data platform", delivery.delivered_at, tries
        elif delivery.status == DeliveryStatus.RECORDED:
            what, at, details = "Delivery kept locally: no DATA_PLATFORM_URL", delivery.delivered_at, tries
        elif delivery.status == DeliveryStatus.DEAD:
            what, at = "Delivery DEAD: an operator may send it again", delivery.updated_at
            details = _join(tries, f"last error: {delivery.last_error}")
        elif delivery.status == DeliveryStatus.RETRYING:
            what, at = "Delivery failing, retrying with backoff", delivery.updated_at
            details = _join(tries, f"last error: {delivery.last_error}")
        else:
            continue
        entries.append(Entry(at or delivery.updated_at, "delivery", what, source, details, links))
    return entries


# -- the outbox: every listener ------------------------------------------------------------------------


def _listener_entries(messages: list[OutboxMessage]) -> list[Entry]:
    """A row's last dispatch and its outcome (handled, parked, failing, running). The outbox keeps the
    last dispatch's time and the count of dispatches and failures, not each one."""
    entries = []
    for message in messages:
        name = message.listener.rsplit(".", 1)[-1]
        app = message.listener.split(".")[1] if message.listener.startswith("apps.") else message.listener
        source = f"{app} · {name}"
        links = _links(_change_link(f"outbox row {message.pk}", OutboxMessage, message.pk))
        counts = _join(
            f"dispatched {message.dispatch_count}×" if message.dispatch_count else "",
            f"failed {message.failure_count}×" if message.failure_count else "",
        )
        error = f"last error: {message.last_error[:300]}" if message.last_error else ""

        def entry(at: datetime, what: str, details: str = "", *, _source=source, _links=links) -> Entry:
            return Entry(at, "listener", what, _source, details, _links)

        if message.dispatched_at is not None:
            if message.dispatch_count > 1:  # the last dispatch is the one kept: a resend
                what = f"{name} sent again for {message.event_type} (by the outbox relay, or an operator's resend)"
            else:
                what = f"{name} dispatched for {message.event_type}"
            entries.append(entry(message.dispatched_at, what, counts))
        if message.handled_at is not None:
            inline = message.dispatched_at is None and message.dispatch_count == 0
            how = "ran inline after the commit" if inline else "handled"
            earlier = f"(before it succeeded) {error}" if error else ""
            entries.append(entry(message.handled_at, f"{name} {how}: {message.event_type}", _join(counts, earlier)))
        elif message.parked_at is not None:
            entries.append(entry(message.parked_at, f"{name} PARKED: waits for an operator", _join(counts, error)))
        elif message.failure_count:
            at = message.started_at or message.dispatched_at or message.created_at
            entries.append(entry(at, f"{name} failing, will be retried", _join(counts, error)))
        elif message.started_since_dispatch:
            entries.append(entry(message.started_at, f"{name} running", counts))
        elif message.dispatched_at is None:
            entries.append(entry(message.created_at, f"{name} waiting to be dispatched for {message.event_type}"))
    return entries


# -- admin's history ---------------------------------------------------------------------------------


def _operator_entries(rows: list[Model]) -> list[Entry]:
    """What operators did in admin to the order and to its rows (retries, sends again, cancels), in one
    query whatever their number."""
    by_model: dict[type[Model], list[str]] = {}
    for row in rows:
        by_model.setdefault(type(row), []).append(str(row.pk))
    content_types = ContentType.objects.get_for_models(*by_model)
    wanted = Q()
    for model, pks in by_model.items():
        wanted |= Q(content_type=content_types[model], object_id__in=pks)
    logged = LogEntry.objects.filter(wanted).select_related("user", "content_type").order_by("action_time", "pk")
    entries = []
    for log in logged:
        url = log.get_admin_url()
        entries.append(
            Entry(
                log.action_time,
                "operator",
                f"Operator {log.user.get_username()}: {log.get_change_message() or log.get_action_flag_display()}",
                "admin",
                _object_words(log),
                (Link(f"{log.content_type.name} {log.object_id}", url),) if url else (),
            )
        )
    return entries


def _object_words(log: LogEntry) -> str:
    kind = log.content_type.name
    shown = log.object_repr if log.object_repr.lower().startswith(kind) else f"{kind} {log.object_repr}"
    return f"on {shown}"


def _join(*parts: str) -> str:
    return ", ".join(part for part in parts if part)
