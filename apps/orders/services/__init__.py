from apps.orders.services.creation import OrderLineInput, order_create
from apps.orders.services.saga import order_complete, order_fail, order_record_step, orders_fail_overdue

__all__ = ("OrderLineInput", "order_complete", "order_create", "order_fail", "order_record_step", "orders_fail_overdue")
