from celery import shared_task

from idempotency.services import idempotency_purge_expired


@shared_task(acks_late=True, time_limit=600)
def purge_idempotency_keys_task() -> int:
    """Run by beat: forget keys older than IDEMPOTENCY_KEY_TTL_HOURS."""
    return idempotency_purge_expired()
