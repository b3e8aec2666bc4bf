"""The outbox as operators see it: what each event's listeners did, and what is parked; and the event
history, every event published, which an order's timeline links to."""

import json

from django.contrib import admin, messages
from django.db.models import F, Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from common.admin import ReadOnlyAdminMixin
from eventbus.models import EventRecord, OutboxMessage
from eventbus.relay import outbox_retry

OPEN = Q(handled_at__isnull=True, parked_at__isnull=True)
STARTED = Q(started_at__gte=F("dispatched_at"))
STATES = {
    "WAITING": OPEN & Q(dispatched_at__isnull=True),
    "DISPATCHED": OPEN & Q(dispatched_at__isnull=False) & ~STARTED,
    "STARTED": OPEN & STARTED,
    "HANDLED": Q(handled_at__isnull=False),
    "PARKED": Q(handled_at__isnull=True, parked_at__isnull=False),
}


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [(state, state.lower()) for state in STATES]

    def queryset(self, request, queryset):
        return queryset.filter(STATES[self.value()]) if self.value() in STATES else queryset


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "event_type",
        "listener",
        "order_id",
        "state",
        "dispatch_count",
        "failure_count",
        "created_at",
    )
    list_filter = (StateFilter, "event_type")
    search_fields = ("order_id__exact", "event_id__exact", "listener")
    ordering = ("-pk",)
    actions = ("send_again",)

    def has_resend_permission(self, request: HttpRequest) -> bool:
        """Sending a listener's task again is the one change operators make here (its change permission)."""
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    @admin.action(description="Send again (parked or stuck, not handled)", permissions=["resend"])
    def send_again(self, request: HttpRequest, queryset: QuerySet[OutboxMessage]) -> None:
        unhandled = list(queryset.filter(handled_at__isnull=True))
        sent = outbox_retry(message_ids=[message.pk for message in unhandled])
        for message in unhandled:
            self.log_change(request, message, "Sent again.")
        self.message_user(request, f"Sent {sent} listener task(s) again.", messages.SUCCESS)


@admin.register(EventRecord)
class EventRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The event history, append-only: each envelope as it was published."""

    list_display = ("occurred_at", "event_type", "source", "order_id", "event_id", "causation_id")
    list_filter = ("event_type", "source")
    search_fields = ("order_id__exact", "event_id__exact", "correlation_id__exact")
    ordering = ("-occurred_at", "-pk")
    fields = (
        "event_id",
        "event_type",
        "occurred_at",
        "source",
        "order_id",
        "correlation_id",
        "causation_id",
        "envelope_data",
    )
    readonly_fields = fields

    @admin.display(description="data")
    def envelope_data(self, record: EventRecord) -> str:
        return format_html("<pre>{}</pre>", json.dumps(record.data, indent=2, ensure_ascii=False))
