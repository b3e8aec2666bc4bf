import pytest
from django.db import IntegrityError, transaction

from apps.payments.events import PaymentCanceled, PaymentFailed, PaymentPaid
from apps.payments.models import Payment, PaymentStatus
from apps.payments.selectors import payment_summaries
from apps.payments.services import payment_cancel, payment_pay
from common.errors import RetryableError

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_latency(settings):
    settings.PAYMENT_LATENCY_MS = 0


# --- payment_pay -------------------------------------------------------------------------------


def test_an_approved_payment_completes_and_publishes_payment_paid(settings, published_events):
    # given
    settings.PAYMENT_DECLINE_RATE = 0

    # when
    payment = payment_pay(order_id=71, user_id=5, amount=30_000)

    # then
    payment.refresh_from_db()
    assert (payment.order_id, payment.user_id, payment.amount) == (71, 5, 30_000)
    assert payment.status == PaymentStatus.COMPLETED
    assert payment.gateway_reference.startswith("sim_")
    assert payment.paid_at is not None
    assert published_events == [PaymentPaid(order_id=71, payment_id=payment.pk, amount=30_000)]


def test_a_declined_payment_fails_with_the_reason_and_publishes_payment_failed(settings, published_events):
    # given
    settings.PAYMENT_DECLINE_RATE = 1

    # when
    payment = payment_pay(order_id=72, user_id=5, amount=30_000)

    # then
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.FAILED
    assert payment.failure_reason == "declined by the card issuer"
    assert (payment.paid_at, payment.gateway_reference) == (None, "")
    assert published_events == [PaymentFailed(order_id=72, payment_id=payment.pk, reason="declined by the card issuer")]


def test_a_repeated_pay_does_not_pay_twice_returns_the_same_outcome_and_publishes_nothing_more(
    settings, published_events
):
    # given
    settings.PAYMENT_DECLINE_RATE = 0
    first = payment_pay(order_id=73, user_id=5, amount=30_000)
    first.refresh_from_db()

    # when the gateway would now decline, and the amount is different
    settings.PAYMENT_DECLINE_RATE = 1
    again = payment_pay(order_id=73, user_id=5, amount=99_000)

    # then
    assert Payment.objects.filter(order_id=73).count() == 1
    again.refresh_from_db()
    assert (again.pk, again.status, again.amount) == (first.pk, PaymentStatus.COMPLETED, 30_000)
    assert (again.gateway_reference, again.paid_at) == (first.gateway_reference, first.paid_at)
    assert published_events == [PaymentPaid(order_id=73, payment_id=first.pk, amount=30_000)]


def test_a_repeated_pay_of_a_declined_payment_returns_the_same_failure_and_publishes_nothing_more(
    settings, published_events
):
    # given
    settings.PAYMENT_DECLINE_RATE = 1
    first = payment_pay(order_id=74, user_id=5, amount=30_000)

    # when
    settings.PAYMENT_DECLINE_RATE = 0
    again = payment_pay(order_id=74, user_id=5, amount=30_000)

    # then
    again.refresh_from_db()
    assert (again.pk, again.status) == (first.pk, PaymentStatus.FAILED)
    assert published_events == [PaymentFailed(order_id=74, payment_id=first.pk, reason="declined by the card issuer")]


def test_a_pay_that_finds_a_ready_payment_asks_the_gateway_with_the_same_key(settings, published_events):
    # given a crash left the payment READY after the gateway approved it
    settings.PAYMENT_DECLINE_RATE = 0
    first = payment_pay(order_id=75, user_id=5, amount=30_000)
    first.refresh_from_db()
    Payment.objects.filter(pk=first.pk).update(status=PaymentStatus.READY, gateway_reference="", paid_at=None)
    published_events.clear()

    # when the retry runs while the gateway would decline new payments
    settings.PAYMENT_DECLINE_RATE = 1
    retried = payment_pay(order_id=75, user_id=5, amount=30_000)

    # then it gets the gateway's first answer, not a second charge or a decline
    retried.refresh_from_db()
    assert (retried.status, retried.gateway_reference) == (PaymentStatus.COMPLETED, first.gateway_reference)
    assert published_events == [PaymentPaid(order_id=75, payment_id=first.pk, amount=30_000)]


@pytest.mark.parametrize("amount", [0, -100])
def test_a_non_positive_amount_fails_without_a_payment(published_events, amount):
    # when
    payment = payment_pay(order_id=76, user_id=5, amount=amount)

    # then
    assert payment is None
    assert not Payment.objects.exists()
    assert published_events == [
        PaymentFailed(order_id=76, payment_id=None, reason="the amount to pay must be greater than 0")
    ]


# --- payment_cancel ----------------------------------------------------------------------------


def test_cancel_of_a_completed_payment_cancels_it_once(settings, published_events):
    # given
    settings.PAYMENT_DECLINE_RATE = 0
    paid = payment_pay(order_id=81, user_id=5, amount=30_000)
    published_events.clear()

    # when
    canceled = payment_cancel(order_id=81, reason="the order could not be completed")

    # then
    assert canceled.pk == paid.pk
    canceled.refresh_from_db()
    assert canceled.status == PaymentStatus.CANCELED
    assert canceled.failure_reason == "the order could not be completed"
    assert canceled.canceled_at is not None
    assert published_events == [
        PaymentCanceled(order_id=81, payment_id=paid.pk, reason="the order could not be completed")
    ]


def test_a_repeated_cancel_changes_nothing_returns_the_same_cancellation_and_publishes_nothing_more(
    settings, published_events
):
    # given
    settings.PAYMENT_DECLINE_RATE = 0
    paid = payment_pay(order_id=82, user_id=5, amount=30_000)
    payment_cancel(order_id=82, reason="first reason")
    canceled_at = Payment.objects.get(pk=paid.pk).canceled_at
    published_events.clear()

    # when
    again = payment_cancel(order_id=82, reason="second reason")

    # then
    again.refresh_from_db()
    assert (again.status, again.failure_reason, again.canceled_at) == (
        PaymentStatus.CANCELED,
        "first reason",
        canceled_at,
    )
    assert published_events == []


def test_cancel_of_a_failed_payment_changes_nothing_returns_the_failure_and_publishes_nothing(
    settings, published_events
):
    # given
    settings.PAYMENT_DECLINE_RATE = 1
    failed = payment_pay(order_id=83, user_id=5, amount=30_000)
    published_events.clear()

    # when
    result = payment_cancel(order_id=83, reason="the order could not be completed")

    # then
    assert (result.pk, result.status) == (failed.pk, PaymentStatus.FAILED)
    failed.refresh_from_db()
    assert (failed.status, failed.canceled_at) == (PaymentStatus.FAILED, None)
    assert published_events == []


def test_cancel_of_a_payment_still_being_paid_is_retried():
    # given
    payment = Payment.objects.create(order_id=84, user_id=5, amount=30_000)

    # when / then
    with pytest.raises(RetryableError):
        payment_cancel(order_id=84, reason="the order could not be completed")
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.READY


def test_cancel_without_a_payment_does_nothing(published_events):
    # when
    result = payment_cancel(order_id=85, reason="the order could not be completed")

    # then
    assert result is None
    assert published_events == []


# --- the database and the selector -------------------------------------------------------------


def test_the_database_allows_one_payment_per_order():
    # given
    Payment.objects.create(order_id=91, user_id=5, amount=1_000)

    # when / then
    with pytest.raises(IntegrityError), transaction.atomic():
        Payment.objects.create(order_id=91, user_id=6, amount=2_000)
    assert Payment.objects.filter(order_id=91).count() == 1


def test_the_database_refuses_a_non_positive_payment():
    # when / then
    with pytest.raises(IntegrityError), transaction.atomic():
        Payment.objects.create(order_id=92, user_id=5, amount=0)


def test_payment_summaries_gives_the_requested_orders_payments(settings):
    # given
    settings.PAYMENT_DECLINE_RATE = 0
    paid = payment_pay(order_id=93, user_id=5, amount=1_000)
    payment_pay(order_id=94, user_id=5, amount=2_000)

    # when
    summaries = payment_summaries(order_ids=[93, 95])

    # then
    assert summaries == {93: {"id": paid.pk, "status": PaymentStatus.COMPLETED, "amount": 1_000}}


def test_a_gateway_that_times_out_leaves_the_payment_ready_for_the_retry(settings, published_events):
    # given
    settings.PAYMENT_LATENCY_MS = 2_000
    settings.PAYMENT_GATEWAY_TIMEOUT_SECONDS = 0.05

    # when
    with pytest.raises(RetryableError):
        payment_pay(order_id=77, user_id=7, amount=5_000)

    # then nothing is decided: the task's retry asks the gateway again with the same key
    assert Payment.objects.get(order_id=77).status == PaymentStatus.READY
    assert published_events == []
