"""The consistency monitor's findings in admin (apps.orders.monitor): what is broken, since when, how
often it was seen, with the order it names one click away; an operator marks a finding resolved."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from apps.orders.models import InvariantViolation
from apps.orders.monitor import violations_resolve
from common.admin import ReadOnlyAdminMixin


class OpenFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "open"), ("resolved", "resolved")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(resolved_at=None)
        if self.value() == "resolved":
            return queryset.exclude(resolved_at=None)
        return queryset


@admin.register(InvariantViolation)
class InvariantViolationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "description",
        "order",
        "user_id",
        "product_id",
        "times_seen",
        "first_seen_at",
        "last_seen_at",
        "state",
    )
    list_filter = (OpenFilter,)
    search_fields = ("description", "order_id__exact")
    ordering = ("-last_seen_at",)
    actions = ["mark_resolved"]

    @admin.display(description="order")
    def order(self, violation: InvariantViolation):
        if violation.order_id is None:
            return "-"
        url = reverse("admin:orders_order_change", args=[violation.order_id])
        return format_html('<a href="{}">order {}</a>', url, violation.order_id)

    @admin.display(description="state")
    def state(self, violation: InvariantViolation) -> str:
        if violation.resolved_at is None:
            return "open"
        return f"resolved by {violation.resolved_by or '?'}"

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.change_invariantviolation")

    @admin.action(
        description="Mark resolved (the monitor opens it again if it still finds it)", permissions=["resolve"]
    )
    def mark_resolved(self, request: HttpRequest, queryset: QuerySet[InvariantViolation]) -> None:
        closed = violations_resolve(
            violation_ids=list(queryset.values_list("pk", flat=True)), by=request.user.get_username()
        )
        for violation in InvariantViolation.objects.filter(pk__in=closed):
            self.log_change(request, violation, "Marked resolved.")
        self.message_user(request, f"Marked {len(closed)} finding(s) resolved.", messages.SUCCESS)
