from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "apps.payments"
    label = "payments"
    queue_group = "remote"  # calls the payment gateway (common.queues)
