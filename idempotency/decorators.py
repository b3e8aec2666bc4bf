"""`@idempotent` on a DRF view's POST handler: the Idempotency-Key header of docs/api.md, in one place.

Without the header, nothing changes. With it, the handler runs in one transaction with the key's row
(idempotency.services): a repeat with the same body gets the first answer again, status and body, with
`Idempotent-Replayed: true`; a different body gets 422; a key still being processed, 409 after a short
wait. A 4xx answer is kept (its effect, if any, rolled back); a 5xx is not, so its retry runs anew.
"""

import functools
from collections.abc import Callable

from django.db import transaction
from django.http import HttpResponse
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from common.errors import ApplicationError
from common.openapi import idempotent_operation
from idempotency.services import idempotency_claim, idempotency_record_answer, request_fingerprint

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
REPLAYED_HEADER = "Idempotent-Replayed"


class _Answer(Exception):
    """Carries a response out of an atomic block so that the block rolls back."""

    def __init__(self, response: Response):
        super().__init__(response.status_code)
        self.response = response


def key_of(request) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not all(" " <= char <= "~" for char in key):
        raise ApplicationError(
            f"The {HEADER} header must be 1 to {MAX_KEY_LENGTH} printable ASCII characters.",
            code="validation_error",
            details={"headers": {HEADER: "1 to 255 printable ASCII characters"}},
        )
    return key


def _run_keeping_4xx(view, handler: Callable, request, args, kwargs) -> Response:
    """The handler's response, as DRF would make it; an error answer leaves no effect behind."""
    try:
        with transaction.atomic():
            response = handler(view, request, *args, **kwargs)
            if response.status_code >= 400:
                raise _Answer(response)
    except _Answer as answer:
        return answer.response
    except Exception as error:
        return view.handle_exception(error)
    return response


def _rendered(response: Response) -> str:
    """The body as the client gets it (JSON is the API's only renderer), to replay byte for byte."""
    return JSONRenderer().render(response.data).decode() if response.data is not None else ""


def idempotent(handler: Callable) -> Callable:
    @functools.wraps(handler)
    def handle(view, request, *args, **kwargs):
        key = key_of(request)
        if key is None:
            return handler(view, request, *args, **kwargs)
        fingerprint = request_fingerprint(method=request.method, path=request.path, body=request.data)
        try:
            with transaction.atomic():
                claim = idempotency_claim(user_id=request.user.pk, key=key, fingerprint=fingerprint)
                if claim.record is None:
                    replay = HttpResponse(claim.body, status=claim.status_code, content_type="application/json")
                    replay[REPLAYED_HEADER] = "true"
                    return replay
                response = _run_keeping_4xx(view, handler, request, args, kwargs)
                if response.status_code >= 500:
                    raise _Answer(response)  # not kept: the key goes with the transaction
                idempotency_record_answer(
                    record=claim.record, status_code=response.status_code, body=_rendered(response)
                )
                return response
        except _Answer as answer:
            return answer.response

    return idempotent_operation(handle, header=HEADER, max_key_length=MAX_KEY_LENGTH, replayed_header=REPLAYED_HEADER)
