from django import forms

from apps.products.models import Product


class ProductForm(forms.ModelForm):
    """What an operator may edit on a product; stock is not here (it grows only through stock_add)."""

    price = forms.IntegerField(min_value=1)

    class Meta:
        model = Product
        fields = ("name", "price", "status")


class ProductAddForm(ProductForm):
    """A new product and its initial stock; the admin saves it with product_create."""

    initial_stock = forms.IntegerField(min_value=0, initial=0, help_text="Units on hand to start with.")


class StockAddForm(forms.Form):
    quantity = forms.IntegerField(min_value=1, help_text="Units to add to each selected product.")
