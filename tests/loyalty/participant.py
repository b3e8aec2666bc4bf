"""The loyalty app's part in the order saga (common.participants): it holds the order's points, and earns
them when the order completes. Only orders whose customer has a points account take part."""

from apps.orders.events import OrderCompleted, OrderCreated
from common.participants import Participant
from tests.loyalty.events import PointsReserved, PointsReserveFailed
from tests.loyalty.models import LoyaltyStep, PointsAccount
from tests.loyalty.services import points_earn_apply, points_reserve_apply


def _has_account(order) -> bool:
    return PointsAccount.objects.filter(user_id=order.user_id).exists()


def _reserve(order: OrderCreated) -> None:
    points_reserve_apply(order_id=order.order_id, user_id=order.user_id, total_price=order.total_price)


def _earn(order: OrderCompleted) -> None:
    points_earn_apply(order_id=order.order_id)


PARTICIPANT = Participant(
    step="points",
    succeeded=PointsReserved,
    failed=PointsReserveFailed,
    record=LoyaltyStep,
    effect=_reserve,
    confirm=_earn,
    applies=_has_account,
)
