"""What every listener task shares: its base (eventbus.listeners) and its retry policy."""

from django.db import InterfaceError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from common.errors import RetryableError
from eventbus.listeners import ListenerTask

RETRYABLE_ERRORS = (RetryableError, OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError)

# Options for @shared_task on every listener: retry transient errors with exponential backoff and jitter;
# anything else is a bug or a final refusal: it is not retried, and its outbox row is parked.
LISTENER_TASK_OPTIONS = {
    "base": ListenerTask,
    "autoretry_for": RETRYABLE_ERRORS,
    "retry_backoff": 1,
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": 12,
    "acks_late": True,
}

# A compensation must happen: it is retried on any error, with backoff, a bounded number of times; if it
# still fails its outbox row is parked, and the order shows it in admin with a way to retry.
COMPENSATION_TASK_OPTIONS = {
    **LISTENER_TASK_OPTIONS,
    "autoretry_for": (Exception,),
    "max_retries": 6,
}

# A listener whose function takes any number of envelopes and handles them in one transaction, each order on
# its own (eventbus.listeners): a worker's run also takes the listener's rows waiting in the outbox.
BATCHED_LISTENER_TASK_OPTIONS = {**LISTENER_TASK_OPTIONS, "batched": True}
BATCHED_COMPENSATION_TASK_OPTIONS = {**COMPENSATION_TASK_OPTIONS, "batched": True}
