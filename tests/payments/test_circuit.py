"""The payment gateway's circuit breaker in whole sagas, run by a real worker: a gateway that is down (a real
HTTP server on 127.0.0.1 answering 503) opens the breaker; while it is open the payments wait, READY, and the
gateway hears nothing; once it is back one trial call closes the breaker and every order is paid exactly
once. A payment whose order failed meanwhile (the saga's deadline) is not made at all."""

import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from django.conf import settings
from django.test import Client
from django.utils import timezone

from apps.balance.selectors import balance_of
from apps.orders.consistency import violations
from apps.orders.models import Order
from apps.orders.services import orders_recover
from apps.payments.gateway import GatewayResult, GatewayUnavailable
from apps.payments.models import Payment
from common.circuit import CLOSED, OPEN, PAYMENT_GATEWAY
from eventbus.models import OutboxMessage
from eventbus.relay import outbox_relay
from tests.dataplatform.test_delivery import DataPlatform, Received
from tests.saga.conftest import event_counts, settled
from tests.saga_worker import running_worker, wait_for, wait_until_idle

pytestmark = pytest.mark.django_db(transaction=True)

RESET = 1.5
PAY = "apps.payments.tasks.pay_task"


class PartnerStandIn(DataPlatform):
    """A partner's server (the gateway here, the data platform in its tests): answers the scripted status
    and keeps every request, with when it came."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def _next(self, request: Received) -> int:
        with self._lock:
            self.received.append(request)
            self.times.append(time.time())
            return self._statuses.pop(0) if len(self._statuses) > 1 else self._statuses[0]

    def calls(self, operation: str | None = None, *, after: float = 0.0) -> Counter:
        """How many calls (of `operation`) each idempotency key made after a moment (time.time())."""
        with self._lock:
            pairs = list(zip(self.received, self.times, strict=True))
        return Counter(
            request.idempotency_key
            for request, at in pairs
            if at > after and (operation is None or request.body.get("operation") == operation)
        )


class HttpGateway:
    """A gateway adapter over HTTP, as a real one is: unreachable, timed out or 5xx is GatewayUnavailable."""

    def pay(self, *, idempotency_key: str, amount: int) -> GatewayResult:
        self._post("pay", idempotency_key, amount=amount)
        return GatewayResult(approved=True, reference=f"ref-{idempotency_key}")

    def cancel(self, *, reference: str, idempotency_key: str) -> None:
        self._post("cancel", idempotency_key, reference=reference)

    @staticmethod
    def _post(operation: str, idempotency_key: str, **body) -> None:
        try:
            response = requests.post(
                settings.TEST_GATEWAY_URL,
                json={"operation": operation, **body},
                headers={"Idempotency-Key": idempotency_key},
                timeout=settings.PAYMENT_GATEWAY_TIMEOUT_SECONDS,
            )
        except requests.RequestException as error:
            raise GatewayUnavailable(str(error)) from error
        if response.status_code >= 500:
            raise GatewayUnavailable(f"HTTP {response.status_code}")


@pytest.fixture
def gateway(settings) -> Iterator[PartnerStandIn]:
    stand_in = PartnerStandIn()
    thread = threading.Thread(target=stand_in.server.serve_forever, daemon=True)
    thread.start()
    settings.PAYMENT_GATEWAY = "tests.payments.test_circuit.HttpGateway"
    settings.TEST_GATEWAY_URL = stand_in.url
    settings.PAYMENT_GATEWAY_TIMEOUT_SECONDS = 2
    settings.CIRCUIT_FAILURE_THRESHOLD = 3
    settings.CIRCUIT_RESET_SECONDS = RESET
    yield stand_in
    stand_in.server.shutdown()
    stand_in.server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def orders(make_user, make_product, place_order):
    def place(count: int) -> list[int]:
        product = make_product(price=10_000, stock=count)
        return [place_order(make_user(balance=10_000), [(product.pk, 1)]) for _ in range(count)]

    return place


def open_breaker() -> float:
    """Wait until the gateway's breaker opens; returns when it opened (time.time())."""
    wait_for(lambda: PAYMENT_GATEWAY.snapshot().state == OPEN, message="the breaker open")
    return PAYMENT_GATEWAY.snapshot().opened_at.timestamp()


def assert_no_call_during_a_cool_off(partner: PartnerStandIn, opened_at: float, cool_off: float = RESET) -> None:
    """After the breaker opened, the partner heard only trials: the first once the cool-off was over, each
    next one a cool-off after the last (which failed and reopened it). A call let through just before the
    opening may land in its first moments."""
    trials = sorted(at for at in partner.times if at > opened_at + 0.5)
    assert trials, "no trial call was made"
    assert trials[0] >= opened_at + cool_off - 0.05
    assert all(later - earlier >= cool_off - 0.05 for earlier, later in itertools.pairwise(trials))


def test_a_gateway_that_is_down_opens_the_breaker_and_every_payment_completes_once_it_is_back(
    gateway, saga_worker, orders, published_events
):
    # given a gateway that answers 503
    gateway.answer(503)

    # when five orders want paying
    order_ids = orders(5)
    opened_at = open_breaker()

    # then the payments wait, READY, and the gateway hears only one trial per cool-off
    time.sleep(2.5 * RESET)
    assert_no_call_during_a_cool_off(gateway, opened_at)
    assert set(Payment.objects.filter(order_id__in=order_ids).values_list("status", flat=True)) == {"READY"}
    assert Order.objects.filter(pk__in=order_ids, status="PAYMENT_WAITING").count() == 5
    assert event_counts(published_events)["PaymentFailed"] == 0
    # and dashboards see it open
    assert 'circuit_breaker_state{name="payment_gateway",state="open"} 1.0' in scraped_metrics()

    # when the gateway is back
    back = time.time()
    gateway.answer(200)

    # then a trial closes the breaker and every order is paid, exactly once
    for order_id in order_ids:
        settled(order_id, "COMPLETED")
    assert PAYMENT_GATEWAY.snapshot().state == CLOSED
    payments = Payment.objects.filter(order_id__in=order_ids)
    assert Counter(payments.values_list("status", flat=True)) == {"COMPLETED": 5}
    assert gateway.calls("pay", after=back) == {f"payment-{payment.pk}": 1 for payment in payments}
    counts = event_counts(published_events)
    assert (counts["PaymentPaid"], counts["PaymentFailed"], counts["OrderCompleted"]) == (5, 0, 5)
    assert not OutboxMessage.objects.filter(listener=PAY, handled_at__isnull=True).exists()
    assert violations(published_events) == []
    assert 'circuit_breaker_state{name="payment_gateway",state="closed"} 1.0' in scraped_metrics()


def test_a_payment_waiting_when_the_relay_sends_its_task_again_is_still_made_once(
    gateway, saga_worker, orders, published_events
):
    # given payments waiting on the open breaker
    gateway.answer(503)
    order_ids = orders(4)
    open_breaker()
    wait_for(
        lambda: OutboxMessage.objects.filter(listener=PAY, order_id__in=order_ids, failure_count__gt=0).count() == 4,
        message="every payment waiting for its retry",
    )

    # when the outbox relay runs meanwhile (the test worker closes its database connections, so the relay
    # takes the waiting tasks' runs for dead and sends them again: two runs of each payment wait)
    assert outbox_relay() >= 1
    back = time.time()
    gateway.answer(200)

    # then each payment is still made once: the two runs of one payment never both call the gateway
    for order_id in order_ids:
        settled(order_id, "COMPLETED")
    payments = Payment.objects.filter(order_id__in=order_ids)
    assert gateway.calls("pay", after=back) == {f"payment-{payment.pk}": 1 for payment in payments}
    assert event_counts(published_events)["PaymentPaid"] == 4
    assert violations(published_events) == []


def test_a_payment_whose_order_failed_at_its_deadline_while_it_waited_is_made_once_and_cancelled(
    gateway, settings, saga_worker, orders, published_events
):
    # given an order whose payment waits on the open breaker (an earlier call may have charged: only a
    # call with the payment's key can tell)
    settings.CIRCUIT_FAILURE_THRESHOLD = 1
    gateway.answer(503)
    [order_id] = orders(1)
    open_breaker()
    user_id = Order.objects.get(pk=order_id).user_id

    # when the order passes its deadline and the sweep fails it, then the gateway is back
    Order.objects.filter(pk=order_id).update(created_at=timezone.now() - timedelta(seconds=61))
    assert orders_recover() == {"failed": 1}
    back = time.time()
    gateway.answer(200)

    # then the payment is made once, as a payment in flight at the deadline is, and cancelled: the customer
    # gets everything back
    wait_for(lambda: Payment.objects.get(order_id=order_id).status == "CANCELED", message="payment cancelled")
    wait_until_idle()
    payment = Payment.objects.get(order_id=order_id)
    assert gateway.calls("pay", after=back) == {f"payment-{payment.pk}": 1}
    assert sum(gateway.calls("cancel", after=back).values()) == 1
    order = Order.objects.get(pk=order_id)
    assert (order.status, order.failure_reason) == ("FAILED", "the payment did not complete before the saga's deadline")
    assert balance_of(user_id=user_id) == 10_000
    counts = event_counts(published_events)
    assert (counts["PaymentPaid"], counts["PaymentCanceled"], counts["OrderFailed"]) == (1, 1, 1)
    assert violations(published_events) == []


def test_a_payment_cancelled_while_the_gateway_is_down_is_cancelled_once_it_is_back(
    gateway, settings, make_user, make_product, place_order, client_for, published_events
):
    # given a completed order, and then a gateway that answers 503
    settings.CIRCUIT_FAILURE_THRESHOLD = 1
    user = make_user(balance=10_000)
    with running_worker():
        order_id = place_order(user, [(make_product(price=10_000, stock=1).pk, 1)])
        settled(order_id, "COMPLETED")
        gateway.answer(503)

        # when its customer cancels it
        assert client_for(user).post(f"/api/v1/orders/{order_id}/cancel").status_code == 202
        opened_at = open_breaker()
        time.sleep(2.5 * RESET)
        assert_no_call_during_a_cool_off(gateway, opened_at)
        assert Payment.objects.get(order_id=order_id).status == "COMPLETED"
        back = time.time()
        gateway.answer(200)

        # then the payment is cancelled at the gateway once it is back, once
        wait_for(lambda: Payment.objects.get(order_id=order_id).status == "CANCELED", message="payment cancelled")
        wait_until_idle()

    payment = Payment.objects.get(order_id=order_id)
    assert gateway.calls("cancel", after=back) == {f"payment-{payment.pk}": 1}
    assert balance_of(user_id=user.pk) == 10_000
    assert event_counts(published_events)["PaymentCanceled"] == 1
    assert violations(published_events) == []


def scraped_metrics() -> str:
    return Client().get("/metrics").content.decode()
