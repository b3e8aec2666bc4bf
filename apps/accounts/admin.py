"""API keys as operators see them: whose, since when, until when. Never the key, and no way to mint one
(a key made here would let an operator act as the customer); revoking is deleting."""

from django.contrib import admin
from django.http import HttpRequest
from knox.models import AuthToken

from apps.accounts.models import ApiKey

admin.site.unregister(AuthToken)  # knox's own admin shows digests and mints keys


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("user", "created", "expiry")
    search_fields = ("user__username",)
    list_select_related = ("user",)
    ordering = ("-created",)
    fields = ("user", "created", "expiry")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
