from django.db import transaction
from django.db.models import F

from common.steps import StepRejected, run_compensation, run_confirmation, run_step
from eventbus import publish
from tests.loyalty.events import PointsEarned, PointsGivenBack, PointsReserved, PointsReserveFailed
from tests.loyalty.models import EntryKind, LoyaltyStep, PointsAccount, PointsEntry

WON_PER_POINT = 100


def points_for(total_price: int) -> int:
    return total_price // WON_PER_POINT


def points_account_open(*, user_id: int, frozen: bool = False) -> PointsAccount:
    return PointsAccount.objects.create(user_id=user_id, frozen=frozen)


def points_reserve_apply(*, order_id: int, user_id: int, total_price: int) -> int:
    """The step's effect alone: hold the order's points. StepRejected for a frozen account."""
    points = points_for(total_price)
    if not PointsAccount.objects.filter(user_id=user_id, frozen=False).update(reserved=F("reserved") + points):
        raise StepRejected("the points account is frozen")
    PointsEntry.objects.create(user_id=user_id, order_id=order_id, kind=EntryKind.RESERVE, points=points)
    return points


@transaction.atomic
def points_reserve(*, order_id: int, user_id: int, total_price: int) -> None:
    outcome = run_step(
        LoyaltyStep,
        order_id=order_id,
        apply=lambda: points_reserve_apply(order_id=order_id, user_id=user_id, total_price=total_price),
    )
    if outcome.repeated:
        return
    if outcome.succeeded:
        publish(PointsReserved(order_id=order_id, points=points_for(total_price)))
    else:
        publish(PointsReserveFailed(order_id=order_id, reason=outcome.reason))


def _reservation(order_id: int) -> PointsEntry:
    return PointsEntry.objects.get(order_id=order_id, kind=EntryKind.RESERVE)


def points_earn_apply(*, order_id: int) -> int:
    """The confirm's effect alone: the held points become earned."""
    held = _reservation(order_id)
    PointsAccount.objects.filter(user_id=held.user_id).update(
        reserved=F("reserved") - held.points, points=F("points") + held.points
    )
    PointsEntry.objects.create(user_id=held.user_id, order_id=order_id, kind=EntryKind.EARN, points=held.points)
    return held.points


@transaction.atomic
def points_earn(*, order_id: int) -> bool:
    if run_confirmation(LoyaltyStep, order_id=order_id, confirm=lambda: points_earn_apply(order_id=order_id)):
        publish(PointsEarned(order_id=order_id, points=_reservation(order_id).points))
        return True
    return False


def _give_back(order_id: int, *, kind: str, taken_from: str) -> None:
    held = _reservation(order_id)
    PointsAccount.objects.filter(user_id=held.user_id).update(**{taken_from: F(taken_from) - held.points})
    PointsEntry.objects.create(user_id=held.user_id, order_id=order_id, kind=kind, points=held.points)


@transaction.atomic
def points_give_back(*, order_id: int) -> bool:
    """The undo: release points still held, or take back points already earned. Once."""
    given_back = run_compensation(
        LoyaltyStep,
        order_id=order_id,
        undo=lambda: _give_back(order_id, kind=EntryKind.RELEASE, taken_from="reserved"),
        undo_confirmed=lambda: _give_back(order_id, kind=EntryKind.REVOKE, taken_from="points"),
    )
    if given_back:
        publish(PointsGivenBack(order_id=order_id, points=_reservation(order_id).points))
    return given_back
