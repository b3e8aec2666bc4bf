"""Every HTTP answer the API gives, counted and timed (the outermost middleware, so refusals count too).

A request is labelled by its route's template (`api/v1/orders/<int:order_id>`), never by its path: a path
holds ids, and one label value per order would grow without bound. A request no route matched (an unknown
path, a static file, a body refused before routing) is `unmatched`; a method HTTP does not define is `other`.
"""

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter, Histogram

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})

REQUESTS = Counter(
    "http_requests", "HTTP requests answered, by method, route template and status.", ["method", "route", "status"]
)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time from the request reaching Django to its answer, by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def route_of(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    return match.route if match is not None and match.route else UNMATCHED


class HttpMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        method = request.method if request.method in METHODS else "other"
        route = route_of(request)
        REQUESTS.labels(method=method, route=route, status=str(response.status_code)).inc()
        LATENCY.labels(method=method, route=route).observe(elapsed)
        return response
