"""Balances and their ledger, read-only. Operators add money only through balance_charge, so the limit
and the ledger hold; nothing here edits an amount."""

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import localize
from django.utils.html import format_html, format_html_join

from apps.balance.admin_forms import BalanceChargeForm
from apps.balance.models import Balance, BalanceStep, BalanceTransaction
from apps.balance.services import balance_charge
from common.admin import ReadOnlyAdminMixin, StepRecordAdmin
from common.errors import ApplicationError

RECENT_LEDGER_ROWS = 20


@admin.register(Balance)
class BalanceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only, except that "Add balance" opens the charge form, which calls balance_charge."""

    list_display = ("user", "amount", "updated_at")
    search_fields = ("user__username",)
    list_select_related = ("user",)
    ordering = ("user__username",)
    fields = ("user", "amount", "updated_at", "charge", "ledger")
    readonly_fields = fields

    def has_charge_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_charge_permission(request)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None) -> HttpResponse:
        return self.charge_view(request)

    def charge_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_charge_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = BalanceChargeForm(request.POST)
            if form.is_valid() and self._charge(request, form):
                return HttpResponseRedirect(
                    reverse("admin:balance_balance_change", args=[form.cleaned_data["user"].pk])
                )
        else:
            form = BalanceChargeForm(initial={"user": request.GET.get("username", "")})
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Charge a balance",
            "form": form,
            "limit": f"{settings.BALANCE_LIMIT:,}",
        }
        return TemplateResponse(request, "admin/balance/balance/charge.html", context)

    def _charge(self, request: HttpRequest, form: BalanceChargeForm) -> bool:
        user, amount = form.cleaned_data["user"], form.cleaned_data["amount"]
        try:
            new_amount = balance_charge(user_id=user.pk, amount=amount)
        except ApplicationError as error:
            self.message_user(request, error.message, messages.ERROR)
            return False
        self.log_change(request, Balance.objects.get(user_id=user.pk), f"Charged {amount:,} won.")
        self.message_user(request, f"Charged {amount:,} won to {user}: the balance is now {new_amount:,} won.")
        return True

    @admin.display(description="charge")
    def charge(self, balance: Balance) -> str:
        url = reverse("admin:balance_balance_add")
        return format_html('<a href="{}?username={}">Charge this balance</a>', url, balance.user.get_username())

    @admin.display(description="ledger")
    def ledger(self, balance: Balance) -> str:
        """The latest entries, and a link to all of them."""
        entries = BalanceTransaction.objects.filter(user_id=balance.user_id).order_by("-created_at", "-id")
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    localize(timezone.localtime(entry.created_at)),
                    entry.kind,
                    f"{entry.signed_amount:+,}",
                    f"{entry.balance_after:,}",
                    entry.order_id or "",
                )
                for entry in entries[:RECENT_LEDGER_ROWS]
            ),
        )
        url = reverse("admin:balance_balancetransaction_changelist")
        return format_html(
            "<table><tr><th>when</th><th>kind</th><th>amount</th><th>balance after</th><th>order</th></tr>{}"
            '</table><a href="{}?user__id__exact={}">All {} entries</a>',
            rows,
            url,
            balance.user_id,
            entries.count(),
        )


@admin.register(BalanceTransaction)
class BalanceTransactionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "user", "kind", "amount", "balance_after", "order_id", "created_at")
    list_filter = ("kind",)
    search_fields = ("user__username", "order_id__exact")
    list_select_related = ("user",)
    ordering = ("-created_at", "-id")


admin.site.register(BalanceStep, StepRecordAdmin)
