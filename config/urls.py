from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from common.health import HealthzApi, ReadyzApi
from common.metrics.views import MetricsApi

api_v1 = [
    path("", include("apps.products.urls")),
    path("", include("apps.balance.urls")),
    path("", include("apps.coupons.urls")),
    path("", include("apps.orders.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("healthz", HealthzApi.as_view(), name="healthz"),
    path("readyz", ReadyzApi.as_view(), name="readyz"),
    path("metrics", MetricsApi.as_view(), name="metrics"),
    # The OpenAPI document (YAML; ?format=json for JSON) and Swagger UI: open, never throttled.
    path("api/schema/", SpectacularAPIView.as_view(throttle_classes=[]), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", throttle_classes=[]), name="docs"),
]

handler400 = "common.api.json_bad_request"
handler403 = "common.api.json_permission_denied"
handler404 = "common.api.json_not_found"
handler500 = "common.api.json_server_error"
