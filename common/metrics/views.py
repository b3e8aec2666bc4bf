"""`GET /metrics` (docs/api.md, "Operations"): the fleet's metrics in Prometheus' text format.

Open, like the probes (no user's key, no rate limit), unless METRICS_TOKEN is set: then the scraper sends
`Authorization: Bearer <token>` (Prometheus' `authorization` scrape option), compared in constant time,
and anything else is a 401 in the API's error shape. Errors are JSON, whatever the metrics' format.
"""

from hmac import compare_digest

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from common.metrics.scrape import scrape
from common.openapi import ApiSchema, ErrorCode, errors

SCHEME = "Bearer"
NO_TOKEN = ErrorCode(401, "not_authenticated", "METRICS_TOKEN is set and no `Authorization: Bearer <token>` was given.")
WRONG_TOKEN = ErrorCode(401, "authentication_failed", "The bearer token is not METRICS_TOKEN.")


class PrometheusTextRenderer(BaseRenderer):
    """What a Prometheus server asks for (its Accept header lists text/plain and */*)."""

    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return data


class MetricsTokenAuthentication(BaseAuthentication):
    """The scraper's token, when METRICS_TOKEN is set: `Authorization: Bearer <token>`."""

    def authenticate(self, request):
        expected = settings.METRICS_TOKEN
        scheme, _, token = get_authorization_header(request).partition(b" ")
        if not expected or scheme.lower() != SCHEME.lower().encode():
            return None  # no token needed, or no bearer token given: the permission decides
        if not compare_digest(token.strip(), expected.encode()):
            raise exceptions.AuthenticationFailed(WRONG_TOKEN.meaning)
        return (None, SCHEME)

    def authenticate_header(self, request) -> str:
        return f'{SCHEME} realm="metrics"'


class MetricsTokenRequired(BasePermission):
    def has_permission(self, request, view) -> bool:
        return not settings.METRICS_TOKEN or request.auth == SCHEME


class TextWithJsonErrorsSchema(ApiSchema):
    """The metrics are text (their media type given with the 200); every other answer is JSON."""

    def map_renderers(self, attribute: str) -> list:
        return [getattr(JSONRenderer, attribute)]


class MetricsApi(APIView):
    schema = TextWithJsonErrorsSchema()
    authentication_classes = [MetricsTokenAuthentication]
    permission_classes = [MetricsTokenRequired]
    throttle_classes: list = []
    renderer_classes = [PrometheusTextRenderer]

    @extend_schema(
        operation_id="metrics",
        tags=["operations"],
        summary="The fleet's metrics, in Prometheus' text format",
        description=(
            "Counters and histograms of every process of the fleet (the API's and the workers'), and gauges "
            "read from the database when scraped: `saga_orders_total{outcome}`, `saga_order_duration_seconds`, "
            "`saga_orders_in_flight`, `saga_orders_past_deadline`, `outbox_pending`, "
            "`outbox_oldest_pending_age_seconds`, `outbox_parked`, HTTP and Celery task figures. Open unless "
            "the server's `METRICS_TOKEN` is set; then it needs `Authorization: Bearer <token>` (401 without)."
        ),
        auth=[],
        parameters=[
            OpenApiParameter(
                "WWW-Authenticate",
                {"type": "string", "pattern": f"^{SCHEME} "},
                OpenApiParameter.HEADER,
                required=True,
                response=[401],
                description="The scheme to authenticate with: `Authorization: Bearer <token>`.",
            )
        ],
        responses={
            (200, PrometheusTextRenderer.media_type): OpenApiResponse(
                OpenApiTypes.STR, description="Prometheus' text exposition format."
            ),
            **errors(NO_TOKEN, WRONG_TOKEN),
        },
    )
    def get(self, request):
        return Response(scrape(), content_type=CONTENT_TYPE_LATEST)

    def permission_denied(self, request, message=None, code=None):
        raise exceptions.NotAuthenticated(NO_TOKEN.meaning)

    def finalize_response(self, request, response, *args, **kwargs):
        """Anything but the metrics (an error, OPTIONS' description) is JSON, as everywhere in the API."""
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(response, Response) and not isinstance(response.data, bytes):
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = JSONRenderer.media_type
        return response
