from apps.orders.services.cancel import OrderNotCancelable, order_cancel
from apps.orders.services.creation import OrderLineInput, order_create
from apps.orders.services.recovery import order_reconcile, order_settle_unpaid, orders_recover
from apps.orders.services.saga import order_complete, order_fail, order_record_step

__all__ = (
    "OrderLineInput",
    "OrderNotCancelable",
    "order_cancel",
    "order_complete",
    "order_create",
    "order_fail",
    "order_reconcile",
    "order_record_step",
    "order_settle_unpaid",
    "orders_recover",
)
