"""The outbox as operators see it: what each event's listeners did, and what is parked."""

from django.contrib import admin, messages
from django.db.models import F, Q, QuerySet
from django.http import HttpRequest

from common.admin import ReadOnlyAdminMixin
from eventbus.models import OutboxMessage
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
