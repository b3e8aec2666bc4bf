"""What every listener task shares: its retry policy, told apart from final failures."""

from django.db import InterfaceError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from common.errors import RetryableError

RETRYABLE_ERRORS = (RetryableError, OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError)

# Options for @shared_task on every listener: retry transient errors with exponential backoff and jitter;
# anything else is a bug or a final refusal and is not retried.
LISTENER_TASK_OPTIONS = {
    "autoretry_for": RETRYABLE_ERRORS,
    "retry_backoff": 1,
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": 12,
    "acks_late": True,
}
