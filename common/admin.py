"""What every app's admin shares: read-only views of what the saga owns, and service calls whose
refusals (ApplicationError) reach the operator as messages, never as a 500."""

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from common.errors import ApplicationError


class ReadOnlyAdminMixin:
    """Operators may look, never add, change or delete: the services own every write."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ServiceFormAdminMixin:
    """For admins whose `save_model` calls a service: if the service refuses, the admin's transaction
    rolls back (no object, no log entry) and the operator is sent back to the form with the reason."""

    def changeform_view(
        self, request: HttpRequest, object_id=None, form_url: str = "", extra_context=None
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ApplicationError as error:
            self.message_user(request, error.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


class StepRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """A participant's per-order step records (common.steps), for audit."""

    list_display = ("order_id", "state", "reason", "created_at", "updated_at")
    list_filter = ("state",)
    search_fields = ("order_id__exact",)
    ordering = ("-created_at",)
