"""Orders as operators see them: read-only. An order changes only through the saga's services."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from apps.orders.models import Order, OrderItem
from apps.orders.services.saga import order_steps
from apps.payments.selectors import payment_summaries
from apps.products.selectors import products_for_order
from common.admin import ReadOnlyAdminMixin


class OrderItemInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = OrderItem
    fields = ("product", "quantity", "unit_price")
    readonly_fields = fields
    extra = 0

    @admin.display(description="product")
    def product(self, item: OrderItem) -> str:
        product = products_for_order([item.product_id]).get(item.product_id)
        return f"{product.name} (#{item.product_id})" if product else f"#{item.product_id}"


@admin.register(Order)
class OrderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "user", "status", "total_price", "created_at", "completed_at")
    list_filter = ("status",)
    # `id__exact` compares the id as text, so a search for a username never breaks the integer lookup.
    search_fields = ("id__exact", "user__username")
    list_select_related = ("user",)
    ordering = ("-created_at", "-id")
    inlines = (OrderItemInline,)
    fieldsets = (
        (None, {"fields": ("id", "user", "status", "failure_reason")}),
        ("Prices", {"fields": ("gross_price", "discount_price", "total_price", "user_coupon_id")}),
        ("Saga", {"fields": ("step_statuses", "payment")}),
        ("Times", {"fields": ("created_at", "decided_at", "completed_at", "failed_at")}),
    )
    readonly_fields = (
        "id",
        "user",
        "status",
        "failure_reason",
        "gross_price",
        "discount_price",
        "total_price",
        "user_coupon_id",
        "step_statuses",
        "payment",
        "created_at",
        "decided_at",
        "completed_at",
        "failed_at",
    )

    @admin.display(description="steps")
    def step_statuses(self, order: Order) -> str:
        """The stored outcome once decided; the live process hash in Redis while the order is CREATED."""
        steps = order_steps(order)
        return format_html_join(", ", "{}: <strong>{}</strong>", sorted(steps.items()))

    @admin.display(description="payment")
    def payment(self, order: Order) -> str:
        summary = payment_summaries(order_ids=[order.pk]).get(order.pk)
        if summary is None:
            return "none yet"
        return format_html(
            '<a href="{}">payment {}</a>: {} ({})',
            reverse("admin:payments_payment_change", args=[summary["id"]]),
            summary["id"],
            summary["status"],
            summary["amount"],
        )
