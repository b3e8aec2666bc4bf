from decimal import Decimal

from django import forms

from apps.coupons.models import Coupon


class CouponAddForm(forms.ModelForm):
    """A new coupon; the admin saves it with coupon_create."""

    discount_rate = forms.DecimalField(
        min_value=Decimal(0), max_value=Decimal(1), max_digits=5, decimal_places=4, help_text="Between 0 and 1."
    )

    class Meta:
        model = Coupon
        fields = ("name", "discount_rate", "quantity", "expires_at")
