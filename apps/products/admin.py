"""Products for operators. A product is created with product_create (with its Stock row and initial
ADD movement); afterwards its name, price and status may be edited, while stock only grows through
stock_add (the "Add stock" action). The stock ledger is read-only."""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from apps.products.admin_forms import ProductAddForm, ProductForm, StockAddForm
from apps.products.models import Product, StockMovement, StockStep
from apps.products.services import product_create, stock_add
from common.admin import ReadOnlyAdminMixin, ServiceFormAdminMixin, StepRecordAdmin
from common.errors import ApplicationError


@admin.register(Product)
class ProductAdmin(ServiceFormAdminMixin, admin.ModelAdmin):
    list_display = ("id", "name", "price", "status", "stock_quantity", "created_at")
    list_filter = ("status",)
    search_fields = ("name",)
    list_select_related = ("stock",)
    ordering = ("name",)
    form = ProductForm
    actions = ("add_stock",)
    add_fieldsets = ((None, {"fields": ("name", "price", "status", "initial_stock")}),)
    fieldsets = (
        (None, {"fields": ("name", "price", "status")}),
        ("Stock", {"fields": ("stock_quantity", "movements"), "description": 'Add units with the "Add stock" action.'}),
        (None, {"fields": ("created_at",)}),
    )
    readonly_fields = ("stock_quantity", "movements", "created_at")

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        """A product is stopped (STOP_SELLING), never deleted: orders and the stock ledger refer to it."""
        return False

    def get_fieldsets(self, request: HttpRequest, obj=None):
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return () if obj is None else super().get_readonly_fields(request, obj)

    def get_form(self, request: HttpRequest, obj=None, change: bool = False, **kwargs):
        if obj is None:
            kwargs["form"] = ProductAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request: HttpRequest, obj: Product, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        data = form.cleaned_data
        product = product_create(
            name=data["name"], price=data["price"], status=data["status"], stock=data["initial_stock"]
        )
        obj.pk, obj.created_at = product.pk, product.created_at

    @admin.display(description="stock", ordering="stock__quantity")
    def stock_quantity(self, product: Product) -> int:
        return product.stock.quantity

    @admin.display(description="stock movements")
    def movements(self, product: Product) -> str:
        url = reverse("admin:products_stockmovement_changelist")
        return format_html(
            '<a href="{}?product__id__exact={}">{} movements</a>', url, product.pk, product.movements.count()
        )

    @admin.action(description="Add stock to the selected products", permissions=["change"])
    def add_stock(self, request: HttpRequest, queryset: QuerySet[Product]) -> TemplateResponse | None:
        form = StockAddForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Add stock",
                "form": form,
                "products": queryset.select_related("stock").order_by("pk"),
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/products/product/add_stock.html", context)
        quantity = form.cleaned_data["quantity"]
        for product in queryset.order_by("pk"):
            try:
                now = stock_add(product_id=product.pk, quantity=quantity)
            except ApplicationError as error:
                self.message_user(request, f"{product}: {error.message}", messages.ERROR)
                continue
            self.log_change(request, product, f"Added {quantity} units.")
            self.message_user(request, f"{product}: added {quantity} units, {now} in stock.")
        return None


@admin.register(StockMovement)
class StockMovementAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "product", "kind", "delta", "order_id", "created_at")
    list_filter = ("kind",)
    search_fields = ("product__name", "order_id__exact")
    list_select_related = ("product",)
    ordering = ("-created_at", "-id")


admin.site.register(StockStep, StepRecordAdmin)
