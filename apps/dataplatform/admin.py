"""Deliveries to the data platform: read-only, and dead ones may be sent again through the service. The list
shows the data platform's circuit breaker, which operators may close by hand."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import ngettext

from apps.dataplatform.models import Delivery
from apps.dataplatform.services import delivery_resend
from common.admin import ReadOnlyAdminMixin
from common.circuit import DATA_PLATFORM
from common.circuit_admin import CircuitBreakerAdminMixin
from common.errors import ApplicationError


@admin.register(Delivery)
class DeliveryAdmin(CircuitBreakerAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    circuit_breaker = DATA_PLATFORM
    list_display = ("id", "order_id", "event_type", "status", "attempts", "last_error", "updated_at", "delivered_at")
    list_filter = ("status", "event_type")
    search_fields = ("order_id__exact",)
    ordering = ("-updated_at", "-id")
    fields = (
        "id",
        "order_id",
        "event_type",
        "status",
        "attempts",
        "last_error",
        "payload",
        "created_at",
        "updated_at",
        "delivered_at",
    )
    readonly_fields = fields
    actions = ("send_again",)

    def has_resend_permission(self, request: HttpRequest) -> bool:
        """Sending again is the one change operators make to a delivery (with its change permission)."""
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    @admin.action(description="Send again (dead deliveries only)", permissions=["resend"])
    def send_again(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        resent = 0
        for delivery in queryset.order_by("pk"):
            try:
                delivery_resend(delivery_id=delivery.pk)
            except ApplicationError as error:
                self.message_user(request, f"Order {delivery.order_id}: {error.message}", messages.ERROR)
                continue
            self.log_change(request, delivery, "Sent again")
            resent += 1
        if resent:
            message = ngettext("%d delivery sent again.", "%d deliveries sent again.", resent) % resent
            self.message_user(request, message, messages.SUCCESS)
