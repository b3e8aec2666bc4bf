"""The products app's part in the order saga (common.participants): it takes the order's units."""

from apps.orders.events import OrderCreated
from apps.products.events import StockDeducted, StockDeductFailed
from apps.products.models import StockStep
from apps.products.services import StockLine, stock_deduct_apply
from common.participants import Participant


def _take_units(order: OrderCreated) -> None:
    lines = [StockLine(product_id=item.product_id, quantity=item.quantity) for item in order.items]
    stock_deduct_apply(order_id=order.order_id, lines=lines)


PARTICIPANT = Participant(
    step="stock", succeeded=StockDeducted, failed=StockDeductFailed, record=StockStep, effect=_take_units
)
