"""The request body limit: 413 `request_too_large` (docs/api.md) for a body whose Content-Length is over
API_MAX_BODY_BYTES, before anything reads it."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from common.api import request_too_large_body

DRAIN_CHUNK_BYTES = 64 * 1024


def declared_length(request: HttpRequest) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None  # gunicorn refuses such a request itself


def discard_body(request: HttpRequest, length: int) -> None:
    """Read the body and throw it away, up to API_MAX_BODY_DRAIN_BYTES.

    A server that answers and closes while the client is still sending makes the client's kernel see a
    reset: many clients then report a broken pipe or a reset instead of the answer (gunicorn itself
    discards at most 64 KiB of an unread body before it gives up on the connection). Read to its end, the
    body is gone, the answer arrives and the connection stays open for the next request."""
    left = min(length, settings.API_MAX_BODY_DRAIN_BYTES)
    while left > 0:
        chunk = request.read(min(DRAIN_CHUNK_BYTES, left))
        if not chunk:
            return
        left -= len(chunk)


class RequestBodyLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        length = declared_length(request)
        limit = settings.API_MAX_BODY_BYTES
        if length is not None and length > limit:
            discard_body(request, length)
            return JsonResponse(request_too_large_body(limit), status=413)
        return self.get_response(request)
