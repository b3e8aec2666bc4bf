"""The payment gateway adapter. A real gateway is one class with `pay` and `cancel`; the built-in
simulated one stands in for it on this machine (PAYMENT_DECLINE_RATE, PAYMENT_LATENCY_MS).

Every call gives up after PAYMENT_GATEWAY_TIMEOUT_SECONDS with GatewayUnavailable (retried with the same
idempotency key): the payments run on a threads pool (the Procfile's `remote` worker), where Celery cannot
stop a task at its hard time limit, so the adapter bounds its own waiting."""

import random
import time
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from common.errors import RetryableError
from common.redis import redis_client


@dataclass(frozen=True)
class GatewayResult:
    approved: bool
    reference: str = ""
    reason: str = ""


class GatewayUnavailable(RetryableError):
    """The gateway could not be reached or timed out: the same call, with the same key, is retried."""


class PaymentGateway(Protocol):
    def pay(self, *, idempotency_key: str, amount: int) -> GatewayResult: ...

    def cancel(self, *, reference: str, idempotency_key: str) -> None: ...


class SimulatedGateway:
    """Approves or declines at random with PAYMENT_DECLINE_RATE after PAYMENT_LATENCY_MS.

    Like a real gateway it honours idempotency keys: the same key always gets the same answer, kept in
    Redis so that every worker process agrees."""

    ANSWER_TTL_SECONDS = 7 * 24 * 3600

    def pay(self, *, idempotency_key: str, amount: int) -> GatewayResult:
        self._wait()
        key = f"gateway:simulated:pay:{idempotency_key}"
        declined = random.random() < settings.PAYMENT_DECLINE_RATE
        answer = "declined" if declined else f"approved:sim_{uuid.uuid4().hex[:16]}"
        # One atomic SET NX GET: the first answer for a key stays the answer, even if Redis is flushed
        # between two calls (then this call's answer is stored and used).
        earlier = redis_client().set(key, answer, nx=True, ex=self.ANSWER_TTL_SECONDS, get=True)
        stored = earlier.decode() if earlier is not None else answer
        if stored == "declined":
            return GatewayResult(approved=False, reason="declined by the card issuer")
        return GatewayResult(approved=True, reference=stored.removeprefix("approved:"))

    def cancel(self, *, reference: str, idempotency_key: str) -> None:
        self._wait()
        redis_client().set(f"gateway:simulated:cancel:{idempotency_key}", reference, ex=self.ANSWER_TTL_SECONDS)

    @staticmethod
    def _wait() -> None:
        latency = settings.PAYMENT_LATENCY_MS / 1000
        timeout = settings.PAYMENT_GATEWAY_TIMEOUT_SECONDS
        if latency > timeout:
            time.sleep(timeout)
            raise GatewayUnavailable(f"the gateway did not answer within {timeout:g} s")
        if latency > 0:
            time.sleep(latency)


@cache
def _gateway_class(path: str) -> type:
    return import_string(path)


def get_gateway() -> PaymentGateway:
    return _gateway_class(settings.PAYMENT_GATEWAY)()
