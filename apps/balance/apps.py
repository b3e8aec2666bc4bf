from django.apps import AppConfig


class BalanceConfig(AppConfig):
    name = "apps.balance"
    label = "balance"
