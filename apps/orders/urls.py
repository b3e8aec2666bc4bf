from django.urls import path

from apps.orders.apis import OrderCancelApi, OrderDetailApi, OrderHistoryApi, OrderListCreateApi

urlpatterns = [
    path("orders", OrderListCreateApi.as_view(), name="orders"),
    path("orders/<int:order_id>", OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<int:order_id>/cancel", OrderCancelApi.as_view(), name="order-cancel"),
    path("orders/<int:order_id>/history", OrderHistoryApi.as_view(), name="order-history"),
]
