from django import forms
from django.contrib.auth import get_user_model


class BalanceChargeForm(forms.Form):
    """Whom to charge and how much. The limit is not checked here: balance_charge checks it in the
    statement that adds, which is the only place it holds under concurrent charges."""

    user = forms.ModelChoiceField(
        queryset=get_user_model().objects.all(),
        to_field_name="username",
        widget=forms.TextInput,
        label="Username",
        error_messages={"invalid_choice": "No user has this username."},
    )
    amount = forms.IntegerField(min_value=1, help_text="Won to add to the user's balance.")
