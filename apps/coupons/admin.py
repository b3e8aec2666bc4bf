"""Coupons and the coupons issued to users. A coupon is created with coupon_create and is read-only
afterwards (its rate and quantity bind the coupons already issued); issued coupons change only through
the saga."""

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from apps.coupons.admin_forms import CouponAddForm
from apps.coupons.models import Coupon, CouponStep, UserCoupon
from apps.coupons.services import coupon_create
from common.admin import ReadOnlyAdminMixin, ServiceFormAdminMixin, StepRecordAdmin


@admin.register(Coupon)
class CouponAdmin(ServiceFormAdminMixin, admin.ModelAdmin):
    list_display = ("id", "name", "discount_rate", "issued", "expires_at", "created_at")
    list_filter = ("expires_at",)
    search_fields = ("name",)
    ordering = ("-created_at", "-id")
    form = CouponAddForm
    fields = ("name", "discount_rate", "quantity", "issued", "expires_at", "created_at")

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_fields(self, request: HttpRequest, obj=None):
        return CouponAddForm.Meta.fields if obj is None else self.fields

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return () if obj is None else self.fields

    def save_model(self, request: HttpRequest, obj: Coupon, form, change: bool) -> None:
        data = form.cleaned_data
        coupon = coupon_create(
            name=data["name"],
            discount_rate=data["discount_rate"],
            quantity=data["quantity"],
            expires_at=data["expires_at"],
        )
        obj.pk, obj.created_at = coupon.pk, coupon.created_at

    @admin.display(description="issued / quantity")
    def issued(self, coupon: Coupon) -> str:
        url = reverse("admin:coupons_usercoupon_changelist")
        return format_html(
            '<a href="{}?coupon__id__exact={}">{} / {}</a>', url, coupon.pk, coupon.issued_count, coupon.quantity
        )


@admin.register(UserCoupon)
class UserCouponAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "coupon", "user", "status", "used_by_order_id", "issued_at", "used_at")
    list_filter = ("status",)
    search_fields = ("user__username", "coupon__name")
    list_select_related = ("coupon", "user")
    ordering = ("-issued_at", "-id")


admin.site.register(CouponStep, StepRecordAdmin)
