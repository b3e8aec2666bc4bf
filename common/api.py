"""The JSON error shape of docs/api.md for every 4xx and 5xx, and small helpers shared by the views."""

import structlog
from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from common.errors import ApplicationError

logger = structlog.get_logger(__name__)


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    body = {"code": code, "message": message}
    if details:
        body["details"] = details
    return body


def request_too_large_body(limit: int) -> dict:
    return error_body("request_too_large", f"The request body may be at most {limit:,} bytes.", {"max_bytes": limit})


def _flatten(detail) -> object:
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def exception_handler(exc, context) -> Response:
    set_rollback()
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):  # a body over DATA_UPLOAD_MAX_MEMORY_SIZE the middleware let in
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(request_too_large_body(limit), status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.ValidationError):
        return Response(
            error_body("validation_error", "The request is not valid.", {"fields": _flatten(exc.detail)}),
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, exceptions.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        return Response(error_body(code, str(exc.detail)), status=exc.status_code, headers=headers)
    view = context.get("view")
    logger.exception("api_unhandled_error", view=type(view).__name__ if view is not None else None)
    return Response(
        error_body("internal_error", "Something went wrong on our side; the request changed nothing."),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def json_not_found(request, exception=None) -> JsonResponse:
    return JsonResponse(error_body("not_found", "No such resource."), status=404)


def json_server_error(request) -> JsonResponse:
    return JsonResponse(error_body("internal_error", "Something went wrong on our side."), status=500)


def json_bad_request(request, exception=None) -> JsonResponse:
    return JsonResponse(error_body("bad_request", "The request is malformed."), status=400)


def json_permission_denied(request, exception=None) -> JsonResponse:
    return JsonResponse(error_body("permission_denied", "You may not do this."), status=403)


def acting_user_id(request, user_id: int) -> int:
    """The `{user_id}` of a path, if the caller may act for that user: themselves, or anyone for staff."""
    from django.contrib.auth import get_user_model

    if request.user.pk == user_id:
        return user_id
    if not request.user.is_staff:
        raise exceptions.PermissionDenied("You may act only on your own account.")
    if not get_user_model().objects.filter(pk=user_id).exists():
        raise exceptions.NotFound(f"User {user_id} does not exist.")
    return user_id
