"""Payments as operators see them: read-only. A payment changes only through the saga."""

from django.contrib import admin

from apps.payments.models import Payment
from common.admin import ReadOnlyAdminMixin


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
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
