from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "apps.orders"
    label = "orders"
    queue_group = "flow"  # its queue's group (common.queues)
