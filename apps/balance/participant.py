"""The balance app's part in the order saga (common.participants): it takes the order's total."""

from apps.balance.events import BalanceUsed, BalanceUseFailed
from apps.balance.models import BalanceStep
from apps.balance.services import balance_use_apply
from apps.orders.events import OrderCreated
from common.participants import Participant


def _take_total(order: OrderCreated) -> None:
    balance_use_apply(user_id=order.user_id, order_id=order.order_id, amount=order.total_price)


PARTICIPANT = Participant(
    step="balance", succeeded=BalanceUsed, failed=BalanceUseFailed, record=BalanceStep, effect=_take_total
)
