"""Payments as operators see them: read-only. A payment changes only through the saga. The list shows the
payment gateway's circuit breaker, which operators may close by hand."""

from django.contrib import admin

from apps.payments.models import Payment
from common.admin import ReadOnlyAdminMixin
from common.circuit import PAYMENT_GATEWAY
from common.circuit_admin import CircuitBreakerAdminMixin


@admin.register(Payment)
class PaymentAdmin(CircuitBreakerAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    circuit_breaker = PAYMENT_GATEWAY
    list_display = ("id", "order_id", "user_id", "amount", "status", "created_at", "paid_at", "canceled_at")
    list_filter = ("status",)
    search_fields = ("order_id__exact",)
    ordering = ("-created_at", "-id")
    fields = (
        "id",
        "order_id",
        "user_id",
        "amount",
        "status",
        "gateway_reference",
        "failure_reason",
        "created_at",
        "paid_at",
        "canceled_at",
    )
    readonly_fields = fields
