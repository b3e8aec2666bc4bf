"""Claiming a key, answering from it, forgetting old ones.

A request with a key first INSERTs the key's row (ON CONFLICT DO NOTHING) in the transaction that will
hold its effect. A second request with the same key, arriving while the first runs, waits in that very
INSERT for the first transaction to end (PostgreSQL's unique index makes it wait): if the first commits,
the second finds its answer; if the first rolled back (a 5xx), the second inserts and is processed anew.
The wait is bounded by a lock timeout; past it, the second request is told the key is in use.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection
from django.utils import timezone
from psycopg.errors import LockNotAvailable

from common.db import insert_or_skip
from common.errors import ApplicationError
from idempotency.models import IdempotencyKey


class IdempotencyKeyReused(ApplicationError):
    code = "idempotency_key_reused"
    status_code = 422


class IdempotencyKeyInUse(ApplicationError):
    code = "idempotency_key_in_use"
    status_code = 409


@dataclass(frozen=True)
class Claim:
    """Either this request owns the key (`record`, to store its answer in), or the key already has an
    answer (`status_code` and `body`) to replay."""

    record: IdempotencyKey | None = None
    status_code: int | None = None
    body: str = ""


def request_fingerprint(*, method: str, path: str, body: Any) -> str:
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _expiry_cutoff():
    return timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)


def _insert_waiting_at_most(record: IdempotencyKey) -> bool:
    """INSERT the key, waiting at most IDEMPOTENCY_WAIT_SECONDS for a transaction that holds it."""
    wait_ms = int(settings.IDEMPOTENCY_WAIT_SECONDS * 1000)
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{wait_ms}ms"])
        try:
            inserted = insert_or_skip(record, unique=("user", "key"))
        except OperationalError as error:  # the transaction is aborted: the caller's block rolls it back
            if isinstance(error.__cause__, LockNotAvailable):
                raise IdempotencyKeyInUse(
                    "A request with this Idempotency-Key is still being processed; retry in a moment."
                ) from None
            raise
        cursor.execute("SET LOCAL lock_timeout = DEFAULT")  # the request's own work waits as usual
    return inserted


def idempotency_claim(*, user_id: int, key: str, fingerprint: str) -> Claim:
    """Call inside the transaction that will hold the request's effect (see the module's docstring)."""
    for _ in range(2):  # a second time only after deleting an expired row
        record = IdempotencyKey(user_id=user_id, key=key, fingerprint=fingerprint)
        if _insert_waiting_at_most(record):
            return Claim(record=record)
        earlier = IdempotencyKey.objects.filter(user_id=user_id, key=key).first()
        if earlier is None or earlier.created_at < _expiry_cutoff():
            IdempotencyKey.objects.filter(user_id=user_id, key=key, created_at__lt=_expiry_cutoff()).delete()
            continue
        if earlier.fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was used for a different request.", details={"idempotency_key": key}
            )
        return Claim(status_code=earlier.status_code, body=earlier.response_body)
    raise IdempotencyKeyInUse("This Idempotency-Key is being reused concurrently; retry in a moment.")


def idempotency_record_answer(*, record: IdempotencyKey, status_code: int, body: str) -> None:
    IdempotencyKey.objects.filter(pk=record.pk).update(status_code=status_code, response_body=body)


def idempotency_purge_expired() -> int:
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=_expiry_cutoff()).delete()
    return deleted
