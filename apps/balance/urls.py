from django.urls import path

from apps.balance.apis import BalanceApi, BalanceChargeApi

urlpatterns = [
    path("users/<int:user_id>/balance", BalanceApi.as_view(), name="balance"),
    path("users/<int:user_id>/balance/charge", BalanceChargeApi.as_view(), name="balance-charge"),
]
