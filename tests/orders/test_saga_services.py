"""The orders app's part of the saga: gather the step results under the lock, decide once (fenced in
PostgreSQL), then complete or fail the order."""

import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.orders.events import (
    OrderCompleted,
    OrderCompleteFailed,
    OrderCreated,
    OrderFailed,
    OrderLine,
    OrderPaymentWaited,
)
from apps.orders.models import Order, OrderStatus
from apps.orders.process import OrderLockBusy
from apps.orders.services import OrderLineInput, order_complete, order_create, order_fail, order_record_step
from apps.orders.services.saga import UNDECIDED, UNPAID, _decide, order_steps
from common.errors import RetryableError
from common.redis import redis_client
from tests.participants import all_steps, record_every_step


@pytest.fixture
def place_order(make_user, make_product, give_coupon, published_events):
    """A CREATED order of two items, with or without a coupon; its OrderCreated is left out of the events."""

    def place(*, coupon: bool = True) -> Order:
        user = make_user(balance=100_000)
        product = make_product(price=10_000)
        user_coupon_id = give_coupon(user, rate="0.1").pk if coupon else None
        order = order_create(user_id=user.pk, lines=[OrderLineInput(product.pk, 2)], user_coupon_id=user_coupon_id)
        published_events[:] = [event for event in published_events if not isinstance(event, OrderCreated)]
        return order

    return place


@pytest.fixture
def payment_waiting_order(place_order, published_events):
    def make() -> Order:
        order = place_order()
        record_every_step(order)
        published_events.clear()
        order.refresh_from_db()
        assert order.status == OrderStatus.PAYMENT_WAITING
        return order

    return make


def decisions(published_events) -> list:
    return [event for event in published_events if isinstance(event, OrderPaymentWaited | OrderFailed)]


# --- order_record_step: gathering and deciding --------------------------------------------------------


@pytest.mark.django_db
def test_the_order_waits_while_any_step_is_pending(place_order, published_events):
    # given
    order = place_order(coupon=True)

    # when two of three steps report
    first = order_record_step(order_id=order.pk, step="balance", succeeded=True)
    second = order_record_step(order_id=order.pk, step="stock", succeeded=True)

    # then
    assert first is second is None
    order.refresh_from_db()
    assert order.status == OrderStatus.CREATED and order.steps is None and order.decided_at is None
    assert order_steps(order) == all_steps(coupon="PENDING")
    assert published_events == []


@pytest.mark.django_db
def test_a_failed_step_waits_for_the_others_before_deciding(place_order, published_events):
    # given
    order = place_order(coupon=True)

    # when
    decided = order_record_step(order_id=order.pk, step="balance", succeeded=False, reason="insufficient balance")

    # then
    assert decided is None
    order.refresh_from_db()
    assert order.status == OrderStatus.CREATED
    assert order_steps(order) == all_steps(balance="FAILED", coupon="PENDING", stock="PENDING")
    assert published_events == []


@pytest.mark.django_db
def test_all_steps_succeeding_moves_the_order_to_payment_waiting_once(place_order, published_events):
    # given
    order = place_order(coupon=True)

    # when
    results = [order_record_step(order_id=order.pk, step=step, succeeded=True) for step in order.participants]

    # then: the last report decides
    assert results == [None] * (len(order.participants) - 1) + ["OrderPaymentWaited"]
    order.refresh_from_db()
    assert order.status == OrderStatus.PAYMENT_WAITING
    assert order.steps == all_steps()
    assert order.decided_at is not None and order.failed_at is None and order.failure_reason == ""
    assert published_events == [OrderPaymentWaited(order_id=order.pk, user_id=order.user_id, total_price=18_000)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("failures", "expected_reason"),
    [
        ({"balance": "insufficient balance"}, "balance step failed: insufficient balance"),
        ({"coupon": "the coupon has expired"}, "coupon step failed: the coupon has expired"),
        ({"stock": "out of stock"}, "stock step failed: out of stock"),
        (
            {"balance": "insufficient balance", "stock": "out of stock"},
            "balance step failed: insufficient balance; stock step failed: out of stock",
        ),
    ],
)
def test_any_failed_step_fails_the_order_once_with_a_readable_reason(
    place_order, published_events, failures, expected_reason
):
    # given
    order = place_order(coupon=True)

    # when
    results = [
        order_record_step(order_id=order.pk, step=step, succeeded=step not in failures, reason=failures.get(step, ""))
        for step in order.participants
    ]

    # then
    assert results == [None] * (len(order.participants) - 1) + ["OrderFailed"]
    order.refresh_from_db()
    assert order.status == OrderStatus.FAILED
    assert order.failure_reason == expected_reason
    assert order.steps == all_steps(**dict.fromkeys(failures, "FAILED"))
    assert order.decided_at is not None and order.failed_at is not None
    assert published_events == [
        OrderFailed(
            order_id=order.pk,
            user_id=order.user_id,
            user_coupon_id=order.user_coupon_id,
            reason=expected_reason,
            participants=tuple(order.participants),
        )
    ]


@pytest.mark.django_db
def test_an_order_without_a_coupon_needs_only_balance_and_stock(place_order, published_events):
    # given
    order = place_order(coupon=False)

    # when
    first = order_record_step(order_id=order.pk, step="balance", succeeded=True)
    second = order_record_step(order_id=order.pk, step="stock", succeeded=True)

    # then
    assert (first, second) == (None, "OrderPaymentWaited")
    order.refresh_from_db()
    assert order.status == OrderStatus.PAYMENT_WAITING
    assert order.steps == all_steps()
    assert redis_client().hget(f"order:{order.pk}:process", "coupon") is None
    assert decisions(published_events) == [
        OrderPaymentWaited(order_id=order.pk, user_id=order.user_id, total_price=20_000)
    ]


@pytest.mark.django_db
def test_a_repeated_step_result_changes_nothing(place_order, published_events):
    # given an order decided after its steps succeeded
    order = place_order(coupon=True)
    order_record_step(order_id=order.pk, step="balance", succeeded=True)
    order_record_step(order_id=order.pk, step="balance", succeeded=False, reason="redelivered, differently")
    order_record_step(order_id=order.pk, step="coupon", succeeded=True)
    order_record_step(order_id=order.pk, step="stock", succeeded=True)

    # when the last result is delivered again
    repeated = order_record_step(order_id=order.pk, step="stock", succeeded=True)

    # then
    assert repeated is None
    order.refresh_from_db()
    assert order.status == OrderStatus.PAYMENT_WAITING and order.steps == all_steps()
    assert redis_client().hget(f"order:{order.pk}:process", "balance") == b"SUCCESS"
    assert decisions(published_events) == [
        OrderPaymentWaited(order_id=order.pk, user_id=order.user_id, total_price=18_000)
    ]


@pytest.mark.django_db
def test_a_repeated_failure_after_the_decision_publishes_no_second_order_failed(place_order, published_events):
    # given
    order = place_order(coupon=False)
    order_record_step(order_id=order.pk, step="stock", succeeded=False, reason="out of stock")
    order_record_step(order_id=order.pk, step="balance", succeeded=True)

    # when
    repeated = order_record_step(order_id=order.pk, step="stock", succeeded=False, reason="out of stock")

    # then
    assert repeated is None
    order.refresh_from_db()
    assert order.status == OrderStatus.FAILED and order.failure_reason == "stock step failed: out of stock"
    assert decisions(published_events) == [
        OrderFailed(
            order_id=order.pk,
            user_id=order.user_id,
            user_coupon_id=order.user_coupon_id,
            reason="stock step failed: out of stock",
            participants=tuple(order.participants),
        )
    ]


@pytest.mark.django_db
def test_step_results_arriving_after_the_order_was_failed_change_nothing(place_order, published_events):
    # given an order failed (by its deadline) while a step was still pending
    order = place_order(coupon=True)
    order_record_step(order_id=order.pk, step="balance", succeeded=True)
    assert order_fail(order_id=order.pk, reason="the saga passed its deadline", from_statuses=UNDECIDED)
    published_events.clear()

    # when the late results arrive, all successful
    results = [order_record_step(order_id=order.pk, step=step, succeeded=True) for step in ("coupon", "stock")]

    # then
    assert results == [None, None]
    order.refresh_from_db()
    assert order.status == OrderStatus.FAILED
    assert order.failure_reason == "the saga passed its deadline"
    assert order.steps == all_steps(coupon="PENDING", stock="PENDING")
    assert published_events == []


@pytest.mark.django_db
def test_a_step_result_for_an_unknown_order_is_ignored(published_events, caplog):
    # when both non-coupon steps report, so that the order must be read to decide
    first = order_record_step(order_id=987_654, step="balance", succeeded=True)
    decided = order_record_step(order_id=987_654, step="stock", succeeded=True)

    # then
    assert first is None and decided is None
    assert published_events == []
    logged = [record.msg for record in caplog.records if isinstance(record.msg, dict)]  # structlog's events
    assert {(line["event"], line["order_id"]) for line in logged} == {("step_result_for_unknown_order", 987_654)}


# --- the lock and the database fence ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_step_result_that_cannot_get_the_lock_raises_retryably_and_records_nothing(
    place_order, published_events, settings
):
    # given
    settings.ORDER_LOCK_WAIT_SECONDS = 0.1
    order = place_order(coupon=False)
    order_record_step(order_id=order.pk, step="balance", succeeded=True)
    someone_else = redis_client().lock(f"lock:order:{order.pk}", timeout=30)
    assert someone_else.acquire(blocking=False)

    # when
    with pytest.raises(OrderLockBusy) as busy:
        order_record_step(order_id=order.pk, step="stock", succeeded=True)

    # then
    assert isinstance(busy.value, RetryableError)
    assert redis_client().hgetall(f"order:{order.pk}:process") == {b"balance": b"SUCCESS"}
    order.refresh_from_db()
    assert order.status == OrderStatus.CREATED
    assert published_events == []

    # when the lock is free again, the retried result goes through
    someone_else.release()
    assert order_record_step(order_id=order.pk, step="stock", succeeded=True) == "OrderPaymentWaited"


@pytest.mark.django_db
def test_deciding_twice_publishes_once(place_order, published_events):
    # given two callers that both saw every step succeed
    order = place_order(coupon=True)

    # when both decide
    with transaction.atomic():
        first = _decide(order, all_steps(), {})
    with transaction.atomic():
        second = _decide(order, {**all_steps(), "stock": "FAILED"}, {"stock": "out of stock"})

    # then only the first moved the order out of CREATED, and only it published
    assert (first, second) == ("OrderPaymentWaited", None)
    order.refresh_from_db()
    assert order.status == OrderStatus.PAYMENT_WAITING and order.failure_reason == ""
    assert decisions(published_events) == [
        OrderPaymentWaited(order_id=order.pk, user_id=order.user_id, total_price=18_000)
    ]


@pytest.mark.django_db
def test_a_holder_whose_lease_ran_out_is_fenced_by_the_database(place_order, published_events, settings):
    # given a step result holding the lock, whose lease runs out while it still works
    order = place_order(coupon=False)
    order_record_step(order_id=order.pk, step="balance", succeeded=True)
    stale = redis_client().lock(f"lock:order:{order.pk}", timeout=0.1)
    assert stale.acquire(blocking=False)
    time.sleep(0.2)

    # when another result takes the lock and decides, and the stale holder then decides too
    fresh = order_record_step(order_id=order.pk, step="stock", succeeded=True)
    with transaction.atomic():
        stale_decision = _decide(order, all_steps(), {})

    # then
    assert (fresh, stale_decision) == ("OrderPaymentWaited", None)
    assert decisions(published_events) == [
        OrderPaymentWaited(order_id=order.pk, user_id=order.user_id, total_price=20_000)
    ]


@pytest.mark.django_db(transaction=True)
def test_a_decider_waiting_on_the_row_of_a_concurrent_decider_does_not_publish(place_order, published_events):
    # given
    order = place_order(coupon=True)
    first_updated = threading.Event()
    results: dict[str, str | None] = {}

    def first_decider() -> None:
        try:
            with transaction.atomic():
                results["first"] = _decide(order, all_steps(), {})
                first_updated.set()
                time.sleep(0.3)  # the second decider runs now, before this transaction commits
        finally:
            connection.close()

    def second_decider() -> None:
        try:
            first_updated.wait(timeout=5)
            with transaction.atomic():
                results["second"] = _decide(order, {**all_steps(), "coupon": "FAILED"}, {"coupon": "used"})
        finally:
            connection.close()

    # when
    threads = [threading.Thread(target=first_decider), threading.Thread(target=second_decider)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    # then
    assert results == {"first": "OrderPaymentWaited", "second": None}
    order.refresh_from_db()
    assert order.status == OrderStatus.PAYMENT_WAITING
    assert len(decisions(published_events)) == 1


@pytest.mark.django_db(transaction=True)
def test_racing_step_results_with_a_lease_too_short_to_exclude_anyone_decide_once(
    place_order, published_events, settings
):
    # given a lease so short that the lock excludes no one
    settings.ORDER_LOCK_LEASE_SECONDS = 0.001
    order = place_order(coupon=True)
    order_record_step(order_id=order.pk, step="balance", succeeded=True)
    order_record_step(order_id=order.pk, step="coupon", succeeded=True)
    racers = 8
    start = threading.Barrier(racers)
    results: list[str | None] = []
    errors: list[BaseException] = []

    def deliver_stock_result() -> None:
        try:
            start.wait(timeout=5)
            results.append(order_record_step(order_id=order.pk, step="stock", succeeded=True))
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)
        finally:
            connection.close()

    # when the last step's result is delivered by several workers at once
    threads = [threading.Thread(target=deliver_stock_result) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    # then
    assert errors == []
    assert len(results) == racers
    assert results.count("OrderPaymentWaited") == 1 and results.count(None) == racers - 1
    order.refresh_from_db()
    assert order.status == OrderStatus.PAYMENT_WAITING
    assert decisions(published_events) == [
        OrderPaymentWaited(order_id=order.pk, user_id=order.user_id, total_price=18_000)
    ]


@pytest.mark.django_db
def test_an_order_waits_only_for_its_own_steps_whatever_is_installed_now(place_order, published_events):
    # given an order placed when only the balance step concerned it (the others were installed since)
    order = place_order(coupon=False)
    Order.objects.filter(pk=order.pk).update(participants=["balance"])

    # when its one step reports
    decided = order_record_step(order_id=order.pk, step="balance", succeeded=True)

    # then it is decided: the others never concerned it
    assert decided == "OrderPaymentWaited"
    order.refresh_from_db()
    assert order.steps == all_steps()


@pytest.mark.django_db
def test_a_reported_failure_is_heard_even_from_a_step_that_does_not_concern_the_order(place_order, published_events):
    # given an order without a coupon, whose coupon step nevertheless reports a failure
    order = place_order(coupon=False)
    order_record_step(order_id=order.pk, step="coupon", succeeded=False, reason="the coupon has expired")

    # when its own steps succeed
    decided = record_every_step(order)

    # then a failure is never overruled by "it did not concern the order"
    assert decided == "OrderFailed"
    order.refresh_from_db()
    assert order.failure_reason == "coupon step failed: the coupon has expired"
    assert order.steps == all_steps(coupon="FAILED")


@pytest.mark.django_db
@pytest.mark.parametrize(("coupon", "steps"), [(False, ("balance", "stock")), (True, ("balance", "coupon", "stock"))])
def test_an_order_placed_before_participants_declared_themselves_runs_the_steps_of_its_time(
    place_order, published_events, coupon, steps
):
    # given an order whose participants were never recorded (NULL: placed by the code of that time)
    order = place_order(coupon=coupon)
    Order.objects.filter(pk=order.pk).update(participants=None)
    order.refresh_from_db()

    # when / then
    assert order.taking_part == steps
    decisions = [order_record_step(order_id=order.pk, step=step, succeeded=True) for step in steps]
    assert decisions[-1] == "OrderPaymentWaited" and not any(decisions[:-1])


# --- order_steps ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_order_steps_reads_the_process_hash_while_the_order_is_created(place_order):
    # given
    with_coupon = place_order(coupon=True)
    without_coupon = place_order(coupon=False)
    order_record_step(order_id=with_coupon.pk, step="stock", succeeded=False, reason="out of stock")
    order_record_step(order_id=without_coupon.pk, step="balance", succeeded=True)

    # when / then
    assert order_steps(with_coupon) == all_steps(balance="PENDING", coupon="PENDING", stock="FAILED")
    assert order_steps(without_coupon) == all_steps(stock="PENDING")


@pytest.mark.django_db
def test_order_steps_reads_the_stored_outcome_once_decided(payment_waiting_order):
    # given a decided order whose process hash is gone
    order = payment_waiting_order()
    redis_client().delete(f"order:{order.pk}:process")

    # when / then
    assert order_steps(order) == all_steps()


# --- order_complete ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_paid_order_is_completed_once(payment_waiting_order, published_events):
    # given
    order = payment_waiting_order()

    # when
    completed = order_complete(order_id=order.pk)
    repeated = order_complete(order_id=order.pk)

    # then
    assert (completed, repeated) == (True, False)
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED and order.completed_at is not None
    [item] = order.items.all()
    assert published_events == [
        OrderCompleted(
            order_id=order.pk,
            user_id=order.user_id,
            items=(OrderLine(item.product_id, 2, 10_000),),
            gross_price=20_000,
            discount_price=2_000,
            total_price=18_000,
            user_coupon_id=order.user_coupon_id,
            created_at=order.created_at,
            completed_at=order.completed_at,
            participants=tuple(order.participants),
        )
    ]


@pytest.mark.django_db
def test_an_order_paid_after_its_deadline_is_still_completed_if_nobody_failed_it(payment_waiting_order):
    # given: the deadline is the sweeper's to enforce; a payment that did succeed completes the order
    order = payment_waiting_order()
    Order.objects.filter(pk=order.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.SAGA_DEADLINE_SECONDS + 1)
    )

    # when / then
    assert order_complete(order_id=order.pk) is True
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED


@pytest.mark.django_db
def test_a_failed_order_is_not_completed(payment_waiting_order, published_events):
    # given
    order = payment_waiting_order()
    assert order_fail(order_id=order.pk, reason="the saga passed its deadline", from_statuses=UNPAID)
    published_events.clear()

    # when
    completed = order_complete(order_id=order.pk)

    # then
    assert completed is False
    order.refresh_from_db()
    assert order.status == OrderStatus.FAILED and order.completed_at is None
    [event] = published_events
    assert isinstance(event, OrderCompleteFailed) and event.order_id == order.pk
    assert "FAILED" in event.reason


# --- order_fail -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_created_order_is_failed_once_with_its_steps_so_far(place_order, published_events):
    # given
    order = place_order(coupon=True)
    order_record_step(order_id=order.pk, step="balance", succeeded=True)

    # when
    failed = order_fail(order_id=order.pk, reason="the saga passed its deadline", from_statuses=UNDECIDED)
    repeated = order_fail(order_id=order.pk, reason="another reason", from_statuses=UNDECIDED)

    # then
    assert (failed, repeated) == (True, False)
    order.refresh_from_db()
    assert order.status == OrderStatus.FAILED
    assert order.failure_reason == "the saga passed its deadline"
    assert order.steps == all_steps(coupon="PENDING", stock="PENDING")
    assert order.decided_at is not None and order.failed_at is not None
    assert published_events == [
        OrderFailed(
            order_id=order.pk,
            user_id=order.user_id,
            user_coupon_id=order.user_coupon_id,
            reason="the saga passed its deadline",
            participants=tuple(order.participants),
        )
    ]


@pytest.mark.django_db
def test_a_payment_waiting_order_is_failed_and_keeps_its_decided_steps(payment_waiting_order, published_events):
    # given
    order = payment_waiting_order()
    decided_at = order.decided_at

    # when
    failed = order_fail(order_id=order.pk, reason="payment failed: card declined", from_statuses=UNPAID)

    # then
    assert failed is True
    order.refresh_from_db()
    assert order.status == OrderStatus.FAILED and order.failure_reason == "payment failed: card declined"
    assert order.steps == all_steps() and order.decided_at == decided_at
    assert published_events == [
        OrderFailed(
            order_id=order.pk,
            user_id=order.user_id,
            user_coupon_id=order.user_coupon_id,
            reason="payment failed: card declined",
            participants=tuple(order.participants),
        )
    ]


@pytest.mark.django_db
def test_the_deadline_never_fails_an_order_that_was_decided_meanwhile(payment_waiting_order, published_events):
    # given an order that reached PAYMENT_WAITING just before the sweeper acted on it
    order = payment_waiting_order()

    # when the sweeper fails it as undecided
    failed = order_fail(order_id=order.pk, reason="the saga passed its deadline", from_statuses=UNDECIDED)

    # then nothing happens: only its payment outcome may fail it now
    assert failed is False
    order.refresh_from_db()
    assert order.status == OrderStatus.PAYMENT_WAITING and order.steps == all_steps()
    assert published_events == []


@pytest.mark.django_db
def test_a_completed_order_is_not_failed(payment_waiting_order, published_events):
    # given
    order = payment_waiting_order()
    order_complete(order_id=order.pk)
    published_events.clear()

    # when
    failed = order_fail(order_id=order.pk, reason="payment canceled: too late", from_statuses=UNPAID)

    # then
    assert failed is False
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    assert order.failure_reason == "" and order.failed_at is None
    assert published_events == []


@pytest.mark.django_db
def test_failing_an_unknown_order_does_nothing(published_events):
    assert order_fail(order_id=987_654, reason="whatever", from_statuses=UNDECIDED) is False
    assert published_events == []
