"""The OpenAPI description of the API (drf-spectacular, served at /api/schema/): the pieces views share.

Each view documents, with `extend_schema` beside it, its own answers and the errors only it gives
(`errors(...)`). What follows from the view's configuration rather than from its code is added here, by
the project's schema class `ApiSchema`, so that it cannot drift from what the API does: 401 for a view
that needs a token, 429 with Retry-After for a throttled one, 400 (a Host not served), 406, 413 and 500
for every operation, and the Idempotency-Key header with its answers for a handler wrapped in `@idempotent`.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers

from common.throttles import throttle_scope_of


class ErrorSerializer(serializers.Serializer):
    """Every 4xx and 5xx answer of the API."""

    code = serializers.CharField(help_text="Machine-readable, snake_case: what a client can act on.")
    message = serializers.CharField(help_text="Human-readable: what went wrong.")
    details = serializers.DictField(
        required=False,
        help_text="Optional facts about the error, e.g. `fields` (the field errors of a `validation_error`).",
    )

    class Meta:
        ref_name = "Error"


@dataclass(frozen=True)
class ErrorCode:
    status: int
    code: str
    meaning: str


# The error codes of docs/api.md, by the status they come with.
VALIDATION_ERROR = ErrorCode(400, "validation_error", "The request is not valid; `details.fields` says why.")
PARSE_ERROR = ErrorCode(400, "parse_error", "The body is not JSON.")
BAD_REQUEST = ErrorCode(400, "bad_request", "The request is malformed (e.g. a Host the server does not serve).")
BALANCE_LIMIT_EXCEEDED = ErrorCode(
    400, "balance_limit_exceeded", f"The balance would exceed {settings.BALANCE_LIMIT:,} won."
)
PRODUCT_NOT_ORDERABLE = ErrorCode(
    400, "product_not_orderable", "Some products do not exist or are not on sale (`details.product_ids`)."
)
COUPON_NOT_USABLE = ErrorCode(400, "coupon_not_usable", "The coupon is not the caller's, is used or has expired.")
COUPON_SOLD_OUT = ErrorCode(400, "coupon_sold_out", "Every coupon of this kind has been issued.")
COUPON_ALREADY_ISSUED = ErrorCode(400, "coupon_already_issued", "The user already holds this coupon.")
NOT_AUTHENTICATED = ErrorCode(401, "not_authenticated", "No `Authorization: Token <key>` header was given.")
AUTHENTICATION_FAILED = ErrorCode(401, "authentication_failed", "The key is unknown, revoked or malformed.")
PERMISSION_DENIED = ErrorCode(403, "permission_denied", "The caller may not act on this user (not theirs, not staff).")
NOT_FOUND = ErrorCode(404, "not_found", "No such resource.")
NOT_ACCEPTABLE = ErrorCode(
    406, "not_acceptable", "The Accept header allows none of the operation's formats: JSON (text for /metrics)."
)
ORDER_NOT_CANCELABLE = ErrorCode(409, "order_not_cancelable", "The order is already FAILED or CANCELED.")
IDEMPOTENCY_KEY_IN_USE = ErrorCode(
    409, "idempotency_key_in_use", "The first request with this Idempotency-Key is still being processed."
)
REQUEST_TOO_LARGE = ErrorCode(413, "request_too_large", "The body is over the size limit (`details.max_bytes`).")
UNSUPPORTED_MEDIA_TYPE = ErrorCode(415, "unsupported_media_type", "The body is not `application/json`.")
IDEMPOTENCY_KEY_REUSED = ErrorCode(
    422, "idempotency_key_reused", "This Idempotency-Key was used for a different request."
)
THROTTLED = ErrorCode(429, "throttled", "Over the client's rate limit; `Retry-After` says when to come back.")
INTERNAL_ERROR = ErrorCode(500, "internal_error", "Something went wrong on the server; the request changed nothing.")


class ErrorResponse(OpenApiResponse):
    """The JSON error of one status, its description listing the codes it may carry."""

    def __init__(self, status: int, codes: Iterable[ErrorCode]):
        self.status = status
        self.codes = tuple(dict.fromkeys(codes))
        assert all(code.status == status for code in self.codes), (status, self.codes)
        super().__init__(
            response=ErrorSerializer,
            description=" ".join(f"`{code.code}`: {code.meaning}" for code in self.codes),
            examples=[
                OpenApiExample(code.code, value={"code": code.code, "message": code.meaning}, response_only=True)
                for code in self.codes
            ],
        )


def errors(*codes: ErrorCode) -> dict[int, ErrorResponse]:
    """`responses` entries for these error codes, one per status: `{201: ..., **errors(NOT_FOUND)}`."""
    by_status: dict[int, list[ErrorCode]] = {}
    for code in codes:
        by_status.setdefault(code.status, []).append(code)
    return {status: ErrorResponse(status, grouped) for status, grouped in by_status.items()}


def id_parameter(name: str, description: str) -> OpenApiParameter:
    """A `<int:...>` path id: digits only, so 0 is routed too (and ids far beyond any row), and names nothing."""
    return OpenApiParameter(
        name,
        {"type": "integer", "minimum": 1},
        OpenApiParameter.PATH,
        description=f"{description} Ids start at 1; the path takes 0 too, which names nothing, as any id that "
        "does not exist. A negative or non-numeric id is an unknown path: 404 `not_found`.",
    )


# A `{user_id}` path (common.api.acting_user_id): another user's id is 403, and for staff 404 if there is
# no such user.
USER_ID = id_parameter("user_id", "The user: the caller (any user, for staff).")
ACTING_USER_ERRORS = (PERMISSION_DENIED, NOT_FOUND)


# --- Headers of every operation, added by ApiSchema from the view's configuration -----------------

WWW_AUTHENTICATE = OpenApiParameter(
    "WWW-Authenticate",
    {"type": "string", "enum": ["Token"]},
    OpenApiParameter.HEADER,
    required=True,
    response=[401],
    description="The scheme to authenticate with: `Authorization: Token <key>`.",
)
RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    {"type": "integer", "minimum": 1},
    OpenApiParameter.HEADER,
    required=True,
    response=[429],
    description="Seconds until the client may send a request of this kind again.",
)

# Every answer carries its request's id (common.logs.RequestIdMiddleware): the caller's when it looks like one.
REQUEST_ID = OpenApiParameter(
    "X-Request-ID",
    {"type": "string"},
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "Optional: the caller's id for this request, kept on every log line of it and of the tasks it sends, "
        "and returned. 1 to 128 letters, digits and `._:@/+=-`; any other value is replaced by a new id."
    ),
)
REQUEST_ID_RETURNED = OpenApiParameter(
    "X-Request-ID",
    {"type": "string", "pattern": r"^[A-Za-z0-9._:@/+=-]{1,128}$"},
    OpenApiParameter.HEADER,
    required=True,
    response=True,
    description="The request's id in the logs: the caller's `X-Request-ID` when it is one, else a new one.",
)


# --- Idempotency keys (docs/api.md, "Idempotency keys"), attached by idempotency.decorators.idempotent ---

# 1 to 255 printable ASCII characters, without a space at either end (HTTP stacks strip it off).
IDEMPOTENCY_KEY_PATTERN = r"^[!-~](?:[ -~]*[!-~])?$"
# The answers a request with a key may get again, replayed from the key's first request.
REPLAYABLE_STATUSES = [200, 201, 202, 400, 403, 404, 409]


def idempotent_operation(handler: Callable, *, header: str, max_key_length: int, replayed_header: str) -> Callable:
    """Document a handler as taking an Idempotency-Key: the request header, the replay header, and (by
    ApiSchema) the answers only a key gives."""
    key = OpenApiParameter(
        header,
        {"type": "string", "minLength": 1, "maxLength": max_key_length, "pattern": IDEMPOTENCY_KEY_PATTERN},
        OpenApiParameter.HEADER,
        required=False,
        description=(
            f"Optional, scoped to the caller, kept at least 24 hours: 1 to {max_key_length} printable ASCII "
            "characters. The same key with the same body (equal as parsed JSON) changes nothing and gets the "
            f"first answer again, with `{replayed_header}: true`; with a different body, 422 "
            "`idempotency_key_reused`; while its first request is still processed, 409 `idempotency_key_in_use` "
            "after a short wait. A first request that ended in a 5xx is not kept."
        ),
    )
    replayed = OpenApiParameter(
        replayed_header,
        {"type": "string", "enum": ["true"]},
        OpenApiParameter.HEADER,
        required=False,
        response=REPLAYABLE_STATUSES,
        description=f"Present when this is the first answer to this {header}, given again.",
    )
    handler = extend_schema(parameters=[key, replayed])(handler)
    handler.takes_idempotency_key = True
    return handler


IDEMPOTENCY_ERRORS = (
    VALIDATION_ERROR,
    PARSE_ERROR,
    UNSUPPORTED_MEDIA_TYPE,
    IDEMPOTENCY_KEY_IN_USE,
    IDEMPOTENCY_KEY_REUSED,
)


class ApiSchema(AutoSchema):
    """drf-spectacular's schema class, plus the errors and headers that follow from a view's
    configuration (REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"])."""

    def implied_errors(self) -> list[ErrorCode]:
        implied = [BAD_REQUEST, NOT_ACCEPTABLE, REQUEST_TOO_LARGE, INTERNAL_ERROR]
        if self._needs_token():
            implied += [NOT_AUTHENTICATED, AUTHENTICATION_FAILED]
        if self._throttle_scope():
            implied.append(THROTTLED)
        if self._takes_idempotency_key():
            implied += IDEMPOTENCY_ERRORS
        return implied

    def get_override_parameters(self) -> list[Any]:
        parameters = [*super().get_override_parameters(), REQUEST_ID, REQUEST_ID_RETURNED]
        if self._needs_token():
            parameters.append(WWW_AUTHENTICATE)
        if self._throttle_scope():
            parameters.append(RETRY_AFTER)
        return parameters

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        """The view's responses, each implied error merged into the view's own answer of its status."""
        responses = super()._get_response_bodies(direction)
        declared = self.get_response_serializers()
        declared = declared if isinstance(declared, dict) else {}
        for status, implied in errors(*self.implied_errors()).items():
            own = declared.get(status)
            assert own is None or isinstance(own, ErrorResponse), f"{self.path} {self.method} {status}: {own!r}"
            merged = ErrorResponse(status, [*(own.codes if own else ()), *implied.codes])
            responses[str(status)] = self._get_response_for_code(merged, str(status), direction=direction)
        return dict(sorted(responses.items()))

    def _get_response_for_code(
        self, serializer: Any, status_code: str, media_types: list[str] | None = None, direction: str = "response"
    ) -> dict[str, Any]:
        """A top-level `many=True` answer with its bounds too."""
        response = super()._get_response_for_code(serializer, status_code, media_types, direction)
        body = serializer.response if isinstance(serializer, OpenApiResponse) else serializer
        if isinstance(body, serializers.ListSerializer):
            for content in response.get("content", {}).values():
                if content["schema"].get("type") == "array":
                    content["schema"].update(list_bounds(body))
        return response

    def _needs_token(self) -> bool:
        security = self.get_auth()
        return bool(security) and {} not in security

    def _throttle_scope(self) -> str | None:
        return throttle_scope_of(self.view, self.method)

    def _takes_idempotency_key(self) -> bool:
        return getattr(getattr(self.view, self.method.lower(), None), "takes_idempotency_key", False)


def list_bounds(list_serializer: serializers.ListSerializer) -> dict[str, int]:
    """minItems and maxItems of a `many=True` serializer (`allow_empty=False`, `min_length`, `max_length`),
    which drf-spectacular leaves out."""
    bounds = {}
    min_items = max(list_serializer.min_length or 0, 0 if list_serializer.allow_empty else 1)
    if min_items:
        bounds["minItems"] = min_items
    if list_serializer.max_length is not None:
        bounds["maxItems"] = list_serializer.max_length
    return bounds


class ListSerializerBoundsExtension(OpenApiSerializerFieldExtension):
    """A nested `many=True` serializer with its bounds (registered by defining it: this module is loaded as
    the schema class before any schema is made)."""

    target_class = "rest_framework.serializers.ListSerializer"

    def map_serializer_field(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        return {**schema, **list_bounds(self.target)}
