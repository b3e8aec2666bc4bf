"""One base error for the whole domain; the API turns it into the JSON error of docs/api.md."""

from typing import Any


class ApplicationError(Exception):
    """A final, expected failure: bad input or a rule that refuses. Never retried."""

    code = "application_error"
    status_code = 400

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}


class NotFound(ApplicationError):
    code = "not_found"
    status_code = 404


class RetryableError(Exception):
    """A transient failure (a lock not acquired, a gateway timeout): retry with backoff, never report."""
