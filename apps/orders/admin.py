"""Orders as operators see them: read-only. An order changes only through the saga's services. Each
order has a timeline (apps.orders.timeline): everything that happened to it, oldest first."""

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from redis.exceptions import RedisError

from apps.orders.models import Order, OrderItem, OrderStatus
from apps.orders.services import OrderNotCancelable, order_cancel
from apps.orders.services.saga import order_steps
from apps.orders.timeline import displayed_steps, millis, order_timeline, related_links, step_records
from apps.payments.selectors import payment_summaries
from apps.products.selectors import products_for_order
from common.admin import ReadOnlyAdminMixin
from eventbus.models import OutboxMessage
from eventbus.relay import outbox_retry
from eventbus.selectors import has_parked_messages, messages_of_order, parked_messages

UNSETTLED = (OrderStatus.CREATED, OrderStatus.PAYMENT_WAITING)


# Stuck: still CREATED or PAYMENT_WAITING this long after it was placed (the saga's deadline counts from
# there too). Shorter thresholds find an order in trouble before the sweep fails it.
STUCK_FOR = {"stuck_1m": (60, "1 minute"), "stuck_5m": (300, "5 minutes"), "stuck_1h": (3600, "1 hour")}


def stuck_since(seconds: float | None = None) -> datetime:
    """An order created before this and still undecided or unpaid is stuck: past the saga's deadline,
    or past `seconds`."""
    return timezone.now() - timedelta(seconds=settings.SAGA_DEADLINE_SECONDS if seconds is None else seconds)


class NeedsAttentionFilter(admin.SimpleListFilter):
    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [
            ("parked", "a listener is parked (e.g. a compensation that kept failing)"),
            ("stuck", f"still CREATED or PAYMENT_WAITING past the saga deadline ({settings.SAGA_DEADLINE_SECONDS} s)"),
            *((value, f"still CREATED or PAYMENT_WAITING over {words}") for value, (_, words) in STUCK_FOR.items()),
        ]

    def queryset(self, request, queryset):
        if self.value() == "parked":
            return queryset.filter(has_parked=True)
        if self.value() == "stuck":
            return queryset.filter(status__in=UNSETTLED, created_at__lt=stuck_since())
        if self.value() in STUCK_FOR:
            seconds, _ = STUCK_FOR[self.value()]
            return queryset.filter(status__in=UNSETTLED, created_at__lt=stuck_since(seconds))
        return queryset


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
    list_display = ("id", "user", "status", "total_price", "created_at", "completed_at", "attention", "timeline")
    list_filter = ("status", NeedsAttentionFilter)
    actions = ("retry_parked_listeners", "cancel_orders")
    # `id__exact` compares the id as text, so a search for a username never breaks the integer lookup.
    search_fields = ("id__exact", "user__username")
    list_select_related = ("user",)
    ordering = ("-created_at", "-id")
    inlines = (OrderItemInline,)
    fieldsets = (
        (None, {"fields": ("id", "user", "status", "failure_reason")}),
        ("Prices", {"fields": ("gross_price", "discount_price", "total_price", "user_coupon_id")}),
        ("Saga", {"fields": ("timeline", "step_statuses", "payment", "related", "listeners")}),
        ("Times", {"fields": ("created_at", "decided_at", "completed_at", "failed_at", "canceled_at")}),
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
        "timeline",
        "step_statuses",
        "payment",
        "related",
        "listeners",
        "created_at",
        "decided_at",
        "completed_at",
        "failed_at",
        "canceled_at",
    )

    @admin.display(description="steps")
    def step_statuses(self, order: Order) -> str:
        """The stored outcome once decided; the live process hash in Redis while the order is CREATED. A
        step its participant has undone since (a compensation) reads UNDONE."""
        try:
            steps = order_steps(order)
        except RedisError:
            return "Redis cannot be read: see the timeline for the participants' own records."
        steps = displayed_steps(steps, step_records(order.pk))
        return format_html_join(", ", "{}: <strong>{}</strong>", sorted(steps.items()))

    @admin.display(description="timeline")
    def timeline(self, order: Order) -> str:
        return format_html('<a href="{}">timeline</a>', reverse("admin:orders_order_timeline", args=[order.pk]))

    @admin.display(description="related rows")
    def related(self, order: Order) -> str:
        """The order's ledger rows, stock movements, coupon, payment, deliveries, step records, outbox
        rows and events, each in its own admin."""
        return format_html_join(" · ", '<a href="{}">{}</a>', ((link.url, link.label) for link in related_links(order)))

    @admin.display(description="payment")
    def payment(self, order: Order) -> str:
        summary = payment_summaries(order_ids=[order.pk]).get(order.pk)
        if summary is None:
            return "none yet" if order.status in UNSETTLED else f"none: the order was {order.status} before paying"
        return format_html(
            '<a href="{}">payment {}</a>: {} ({})',
            reverse("admin:payments_payment_change", args=[summary["id"]]),
            summary["id"],
            summary["status"],
            summary["amount"],
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Order]:
        return super().get_queryset(request).annotate(has_parked=has_parked_messages())

    def get_urls(self):
        timeline = path(
            "<path:object_id>/timeline/",
            self.admin_site.admin_view(self.timeline_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_timeline",
        )
        return [timeline, *super().get_urls()]

    def timeline_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Everything that happened to one order, oldest first (apps.orders.timeline)."""
        order = self.get_object(request, unquote(object_id))
        if order is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, order):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": order,
            "title": f"Timeline of order {order.pk}",
            "timeline": order_timeline(order),
            "time_zone": timezone.get_current_timezone_name(),
            "times": [
                (name, millis(getattr(order, name)))
                for name in ("created_at", "decided_at", "completed_at", "failed_at", "canceled_at")
                if getattr(order, name)
            ],
        }
        return TemplateResponse(request, "admin/orders/order/timeline.html", context)

    @admin.display(description="needs attention", ordering="has_parked")
    def attention(self, order: Order) -> str:
        """What waits for an operator: a parked listener (something failed for good), or an order stuck
        past its deadline. Nothing is shown when nothing does."""
        reasons = []
        if order.has_parked:
            reasons.append("a listener is parked")
        if order.status in UNSETTLED and order.created_at < stuck_since():
            reasons.append(f"{order.status} past the deadline")
        return format_html_join(", ", '<strong style="color: #ba2121">{}</strong>', ((r,) for r in reasons))

    @admin.display(description="listeners")
    def listeners(self, order: Order) -> str:
        """Every listener task of every event of this order, from the outbox."""
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td><strong>{}</strong></td><td>{}</td><td>{}</td></tr>",
            (
                (m.event_type, m.listener.rsplit(".", 1)[-1], m.state, m.dispatch_count, _error_of(m))
                for m in messages_of_order(order_id=order.pk)
            ),
        )
        return format_html(
            "<table><tr><th>event</th><th>listener</th><th>state</th><th>dispatches</th><th>last error</th></tr>"
            "{}</table>",
            rows,
        )

    def has_resend_permission(self, request: HttpRequest) -> bool:
        """Retrying an order's parked listeners is the one change operators make to an order."""
        return request.user.has_perm("eventbus.change_outboxmessage")

    @admin.action(description="Retry parked listeners (e.g. a compensation that kept failing)", permissions=["resend"])
    def retry_parked_listeners(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        parked = parked_messages(order_ids=queryset.values_list("pk", flat=True))
        sent = outbox_retry(message_ids=[message.pk for message in parked])
        for order in queryset.filter(pk__in={message.order_id for message in parked}):
            names = sorted(m.listener.rsplit(".", 1)[-1] for m in parked if m.order_id == order.pk)
            self.log_change(request, order, f"Retried parked listeners: {', '.join(names)}.")
        self.message_user(request, f"Sent {sent} parked listener task(s) again.", messages.SUCCESS)

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        """Cancelling for a customer (as the API lets staff do) needs the order's change permission."""
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    @admin.action(description="Cancel the selected orders (for their customers)", permissions=["cancel"])
    def cancel_orders(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        for order in queryset.order_by("pk"):
            try:
                status = order_cancel(order_id=order.pk, by=f"operator {request.user.get_username()}")
            except OrderNotCancelable as refusal:
                self.message_user(request, refusal.message, messages.WARNING)
                continue
            self.log_change(request, order, f"Cancelled: now {status}.")
            self.message_user(request, f"Order {order.pk} cancelled: now {status}.", messages.SUCCESS)


def _error_of(message: OutboxMessage) -> str:
    """The row's last error; once the row was handled after all, said to be an earlier one."""
    error = message.last_error[:200]
    return f"(before it succeeded) {error}" if error and message.handled_at else error


# The consistency monitor's findings, in their own module.
from apps.orders import admin_violations  # noqa: E402, F401
