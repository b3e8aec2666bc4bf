import time

import pytest

from apps.payments.gateway import GatewayResult, GatewayUnavailable, SimulatedGateway, get_gateway
from common.errors import RetryableError


@pytest.fixture(autouse=True)
def no_latency(settings):
    settings.PAYMENT_LATENCY_MS = 0


def test_the_configured_gateway_is_the_simulated_one():
    # then
    assert isinstance(get_gateway(), SimulatedGateway)


def test_pay_approves_with_a_reference_when_nothing_is_declined(settings):
    # given
    settings.PAYMENT_DECLINE_RATE = 0

    # when
    result = SimulatedGateway().pay(idempotency_key="payment-1", amount=1_000)

    # then
    assert result.approved
    assert result.reference.startswith("sim_")
    assert result.reason == ""


def test_pay_declines_with_a_reason_when_everything_is_declined(settings):
    # given
    settings.PAYMENT_DECLINE_RATE = 1

    # when
    result = SimulatedGateway().pay(idempotency_key="payment-1", amount=1_000)

    # then
    assert result == GatewayResult(approved=False, reason="declined by the card issuer")


def test_the_same_key_gets_the_first_approval_even_after_the_decline_rate_changes(settings):
    # given
    gateway = SimulatedGateway()
    settings.PAYMENT_DECLINE_RATE = 0
    first = gateway.pay(idempotency_key="payment-7", amount=1_000)

    # when
    settings.PAYMENT_DECLINE_RATE = 1
    again = gateway.pay(idempotency_key="payment-7", amount=1_000)

    # then
    assert first.approved
    assert again == first
    assert not gateway.pay(idempotency_key="payment-8", amount=1_000).approved


def test_the_same_key_gets_the_first_decline_even_after_the_decline_rate_changes(settings):
    # given
    gateway = SimulatedGateway()
    settings.PAYMENT_DECLINE_RATE = 1
    first = gateway.pay(idempotency_key="payment-9", amount=1_000)

    # when
    settings.PAYMENT_DECLINE_RATE = 0
    again = gateway.pay(idempotency_key="payment-9", amount=1_000)

    # then
    assert not first.approved
    assert again == first
    assert gateway.pay(idempotency_key="payment-10", amount=1_000).approved


def test_each_key_gets_its_own_reference(settings):
    # given
    settings.PAYMENT_DECLINE_RATE = 0
    gateway = SimulatedGateway()

    # then
    assert gateway.pay(idempotency_key="a", amount=1).reference != gateway.pay(idempotency_key="b", amount=1).reference


@pytest.mark.parametrize("call", ["pay", "cancel"])
def test_the_gateway_takes_at_least_the_configured_latency(settings, call):
    # given
    settings.PAYMENT_LATENCY_MS = 50
    gateway = SimulatedGateway()

    # when
    started = time.monotonic()
    if call == "pay":
        gateway.pay(idempotency_key="payment-slow", amount=1_000)
    else:
        gateway.cancel(reference="sim_x", idempotency_key="payment-slow")
    elapsed = time.monotonic() - started

    # then
    assert elapsed >= 0.050


@pytest.mark.parametrize("call", ["pay", "cancel"])
def test_a_gateway_slower_than_its_timeout_is_given_up_on_and_retried(settings, call):
    # given a gateway that would answer after its timeout (the remote worker's threads have no hard limit)
    settings.PAYMENT_LATENCY_MS = 2_000
    settings.PAYMENT_GATEWAY_TIMEOUT_SECONDS = 0.05
    gateway = SimulatedGateway()

    # when / then: a retryable error, after the timeout and not the latency
    started = time.monotonic()
    with pytest.raises(GatewayUnavailable, match=r"did not answer within 0\.05 s"):
        if call == "pay":
            gateway.pay(idempotency_key="payment-too-slow", amount=1_000)
        else:
            gateway.cancel(reference="sim_x", idempotency_key="payment-too-slow")
    assert time.monotonic() - started < 2.0  # it did not wait out the latency
    assert isinstance(GatewayUnavailable("x"), RetryableError)
