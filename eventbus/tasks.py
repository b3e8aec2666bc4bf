from celery import shared_task

from eventbus.relay import event_history_purge, outbox_purge_handled, outbox_relay


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def relay_outbox_task() -> int:
    return outbox_relay()


@shared_task(acks_late=True, time_limit=600)
def purge_outbox_task() -> int:
    return outbox_purge_handled()


@shared_task(acks_late=True, time_limit=600)
def purge_event_history_task() -> int:
    return event_history_purge()
