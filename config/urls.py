from django.contrib import admin
from django.urls import include, path

api_v1 = [
    path("", include("apps.products.urls")),
    path("", include("apps.balance.urls")),
    path("", include("apps.coupons.urls")),
    path("", include("apps.orders.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
]

handler400 = "common.api.json_bad_request"
handler403 = "common.api.json_permission_denied"
handler404 = "common.api.json_not_found"
handler500 = "common.api.json_server_error"
