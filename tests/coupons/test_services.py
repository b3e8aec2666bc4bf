from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.coupons.errors import CouponAlreadyIssued, CouponNotUsable, CouponSoldOut
from apps.coupons.events import CouponRestored, CouponUsed, CouponUseFailed
from apps.coupons.models import Coupon, CouponStep, UserCoupon, UserCouponStatus
from apps.coupons.services import coupon_create, coupon_issue, coupon_restore, coupon_use
from common.errors import ApplicationError, NotFound
from common.steps import REFUSED_AFTER_COMPENSATION, StepOutcome, StepState

pytestmark = pytest.mark.django_db


def state_of(user_coupon: UserCoupon) -> tuple[str, int | None]:
    user_coupon.refresh_from_db()
    return user_coupon.status, user_coupon.used_by_order_id


def expire(user_coupon: UserCoupon) -> None:
    Coupon.objects.filter(pk=user_coupon.coupon_id).update(expires_at=timezone.now() - timedelta(seconds=1))


# --- coupon_create -----------------------------------------------------------------------------


@pytest.mark.parametrize("rate", ["-0.0001", "1.0001", "-1", "2"])
def test_create_refuses_a_rate_outside_zero_to_one(rate):
    # when
    with pytest.raises(ApplicationError) as refused:
        coupon_create(name="bad", discount_rate=Decimal(rate), quantity=1, expires_at=timezone.now())

    # then
    assert refused.value.code == "validation_error"
    assert not Coupon.objects.exists()


@pytest.mark.parametrize("rate", ["0", "1"])
def test_create_allows_the_edges_of_the_rate(rate):
    # when
    coupon = coupon_create(name="edge", discount_rate=Decimal(rate), quantity=3, expires_at=timezone.now())

    # then
    coupon.refresh_from_db()
    assert coupon.discount_rate == Decimal(rate)
    assert (coupon.quantity, coupon.issued_count) == (3, 0)


def test_create_refuses_a_negative_quantity():
    # when
    with pytest.raises(ApplicationError) as refused:
        coupon_create(name="bad", discount_rate=Decimal("0.1"), quantity=-1, expires_at=timezone.now())

    # then
    assert refused.value.code == "validation_error"
    assert not Coupon.objects.exists()


# --- coupon_issue ------------------------------------------------------------------------------


def test_issue_gives_the_user_an_unused_coupon_and_counts_it(make_user, make_coupon):
    # given
    user = make_user()
    coupon = make_coupon(quantity=2)

    # when
    user_coupon = coupon_issue(coupon_id=coupon.pk, user_id=user.pk)

    # then
    assert (user_coupon.coupon_id, user_coupon.user_id) == (coupon.pk, user.pk)
    assert state_of(user_coupon) == (UserCouponStatus.UNUSED, None)
    coupon.refresh_from_db()
    assert coupon.issued_count == 1


def test_issue_refuses_a_second_coupon_of_the_same_kind_to_one_user(make_user, make_coupon):
    # given
    user = make_user()
    coupon = make_coupon(quantity=5)
    coupon_issue(coupon_id=coupon.pk, user_id=user.pk)

    # when
    with pytest.raises(CouponAlreadyIssued) as refused:
        coupon_issue(coupon_id=coupon.pk, user_id=user.pk)

    # then
    assert refused.value.code == "coupon_already_issued"
    assert UserCoupon.objects.filter(coupon=coupon, user=user).count() == 1
    coupon.refresh_from_db()
    assert coupon.issued_count == 1


def test_issue_refuses_once_the_quantity_is_exhausted(make_user, make_coupon):
    # given
    coupon = make_coupon(quantity=2)
    first, second, late = make_user(), make_user(), make_user()
    coupon_issue(coupon_id=coupon.pk, user_id=first.pk)
    coupon_issue(coupon_id=coupon.pk, user_id=second.pk)

    # when
    with pytest.raises(CouponSoldOut) as refused:
        coupon_issue(coupon_id=coupon.pk, user_id=late.pk)

    # then
    assert refused.value.code == "coupon_sold_out"
    assert not UserCoupon.objects.filter(user=late).exists()
    coupon.refresh_from_db()
    assert coupon.issued_count == 2


def test_issue_refuses_an_expired_coupon(make_user, make_coupon):
    # given
    user = make_user()
    coupon = make_coupon(expires_in=timedelta(seconds=-1))

    # when
    with pytest.raises(CouponNotUsable) as refused:
        coupon_issue(coupon_id=coupon.pk, user_id=user.pk)

    # then
    assert refused.value.code == "coupon_not_usable"
    assert not UserCoupon.objects.exists()
    coupon.refresh_from_db()
    assert coupon.issued_count == 0


def test_issue_of_an_unknown_coupon_is_not_found(make_user):
    # given
    user = make_user()

    # when
    with pytest.raises(NotFound) as refused:
        coupon_issue(coupon_id=987_654_321, user_id=user.pk)

    # then
    assert refused.value.status_code == 404
    assert not UserCoupon.objects.exists()


def test_issue_to_an_unknown_user_is_not_found_and_counts_nothing(make_coupon):
    # given
    coupon = make_coupon()

    # when
    with pytest.raises(NotFound):
        coupon_issue(coupon_id=coupon.pk, user_id=987_654_321)

    # then
    coupon.refresh_from_db()
    assert coupon.issued_count == 0


# --- coupon_use --------------------------------------------------------------------------------


def test_use_marks_the_coupon_used_by_the_order(make_user, give_coupon, published_events):
    # given
    user = make_user()
    user_coupon = give_coupon(user)

    # when
    outcome = coupon_use(order_id=11, user_coupon_id=user_coupon.pk, user_id=user.pk)

    # then
    assert outcome == StepOutcome(succeeded=True)
    assert state_of(user_coupon) == (UserCouponStatus.USED, 11)
    assert user_coupon.used_at is not None
    assert CouponStep.objects.get(order_id=11).state == StepState.APPLIED
    assert published_events == [CouponUsed(order_id=11, user_coupon_id=user_coupon.pk)]


def test_use_of_a_coupon_already_used_by_another_order_is_rejected(make_user, give_coupon, published_events):
    # given
    user = make_user()
    user_coupon = give_coupon(user)
    coupon_use(order_id=12, user_coupon_id=user_coupon.pk, user_id=user.pk)
    published_events.clear()

    # when
    outcome = coupon_use(order_id=13, user_coupon_id=user_coupon.pk, user_id=user.pk)

    # then
    assert outcome == StepOutcome(succeeded=False, reason="the coupon was already used")
    assert state_of(user_coupon) == (UserCouponStatus.USED, 12)
    assert published_events == [
        CouponUseFailed(order_id=13, user_coupon_id=user_coupon.pk, reason="the coupon was already used")
    ]


def test_use_of_an_expired_coupon_is_rejected(make_user, give_coupon, published_events):
    # given
    user = make_user()
    user_coupon = give_coupon(user)
    expire(user_coupon)

    # when
    outcome = coupon_use(order_id=14, user_coupon_id=user_coupon.pk, user_id=user.pk)

    # then
    assert outcome == StepOutcome(succeeded=False, reason="the coupon has expired")
    assert state_of(user_coupon) == (UserCouponStatus.UNUSED, None)
    assert [type(event) for event in published_events] == [CouponUseFailed]


def test_use_of_another_users_coupon_is_rejected(make_user, give_coupon, published_events):
    # given
    owner, thief = make_user(), make_user()
    user_coupon = give_coupon(owner)

    # when
    outcome = coupon_use(order_id=15, user_coupon_id=user_coupon.pk, user_id=thief.pk)

    # then
    assert outcome == StepOutcome(succeeded=False, reason="the coupon does not belong to the user")
    assert state_of(user_coupon) == (UserCouponStatus.UNUSED, None)
    assert [type(event) for event in published_events] == [CouponUseFailed]


def test_a_repeated_use_for_the_same_order_changes_nothing_returns_the_same_success_and_publishes_nothing_more(
    make_user, give_coupon, published_events
):
    # given
    user = make_user()
    user_coupon = give_coupon(user)
    coupon_use(order_id=16, user_coupon_id=user_coupon.pk, user_id=user.pk)
    used_at = UserCoupon.objects.get(pk=user_coupon.pk).used_at

    # when
    repeat = coupon_use(order_id=16, user_coupon_id=user_coupon.pk, user_id=user.pk)

    # then
    assert repeat == StepOutcome(succeeded=True, repeated=True)
    assert state_of(user_coupon) == (UserCouponStatus.USED, 16)
    assert user_coupon.used_at == used_at
    assert published_events == [CouponUsed(order_id=16, user_coupon_id=user_coupon.pk)]


# --- coupon_restore ----------------------------------------------------------------------------


def test_restore_makes_the_coupon_unused_again_once(make_user, give_coupon, published_events):
    # given
    user = make_user()
    user_coupon = give_coupon(user)
    coupon_use(order_id=21, user_coupon_id=user_coupon.pk, user_id=user.pk)
    published_events.clear()

    # when
    first = coupon_restore(order_id=21)
    second = coupon_restore(order_id=21)

    # then
    assert (first, second) == (True, False)
    assert state_of(user_coupon) == (UserCouponStatus.UNUSED, None)
    assert user_coupon.used_at is None
    assert CouponStep.objects.get(order_id=21).state == StepState.COMPENSATED
    assert published_events == [CouponRestored(order_id=21, user_coupon_id=user_coupon.pk)]


def test_a_restored_coupon_can_be_used_by_a_later_order(make_user, give_coupon):
    # given
    user = make_user()
    user_coupon = give_coupon(user)
    coupon_use(order_id=22, user_coupon_id=user_coupon.pk, user_id=user.pk)
    coupon_restore(order_id=22)

    # when
    outcome = coupon_use(order_id=23, user_coupon_id=user_coupon.pk, user_id=user.pk)

    # then
    assert outcome.succeeded
    assert state_of(user_coupon) == (UserCouponStatus.USED, 23)


def test_restore_for_an_order_whose_use_was_rejected_leaves_the_other_orders_coupon_alone(
    make_user, give_coupon, published_events
):
    # given the coupon used by order 24, and order 25 refused it
    user = make_user()
    user_coupon = give_coupon(user)
    coupon_use(order_id=24, user_coupon_id=user_coupon.pk, user_id=user.pk)
    coupon_use(order_id=25, user_coupon_id=user_coupon.pk, user_id=user.pk)
    published_events.clear()

    # when
    restored = coupon_restore(order_id=25)

    # then
    assert restored is False
    assert state_of(user_coupon) == (UserCouponStatus.USED, 24)
    assert published_events == []


def test_a_restore_before_the_use_leaves_a_tombstone_that_refuses_the_late_use(
    make_user, give_coupon, published_events
):
    # given
    user = make_user()
    user_coupon = give_coupon(user)

    # when
    restored = coupon_restore(order_id=26)
    late_use = coupon_use(order_id=26, user_coupon_id=user_coupon.pk, user_id=user.pk)

    # then
    assert restored is False
    assert late_use == StepOutcome(succeeded=False, reason=REFUSED_AFTER_COMPENSATION, repeated=True)
    assert state_of(user_coupon) == (UserCouponStatus.UNUSED, None)
    assert CouponStep.objects.get(order_id=26).state == StepState.COMPENSATED
    assert published_events == []


# --- database constraints ----------------------------------------------------------------------


def test_the_database_refuses_two_coupons_of_a_kind_for_one_user(make_user, give_coupon):
    # given
    user = make_user()
    user_coupon = give_coupon(user)

    # when / then
    with pytest.raises(IntegrityError), transaction.atomic():
        UserCoupon.objects.create(coupon_id=user_coupon.coupon_id, user=user)


@pytest.mark.parametrize(
    ("status", "order_id"), [(UserCouponStatus.USED, None), (UserCouponStatus.UNUSED, 31)], ids=["used", "unused"]
)
def test_the_database_keeps_used_if_and_only_if_an_order_used_it(make_user, give_coupon, status, order_id):
    # given
    user = make_user()
    user_coupon = give_coupon(user)

    # when / then
    with pytest.raises(IntegrityError), transaction.atomic():
        UserCoupon.objects.filter(pk=user_coupon.pk).update(status=status, used_by_order_id=order_id)
    assert state_of(user_coupon) == (UserCouponStatus.UNUSED, None)


def test_the_database_refuses_to_issue_more_than_the_quantity(make_coupon):
    # given
    coupon = make_coupon(quantity=1)

    # when / then
    with pytest.raises(IntegrityError), transaction.atomic():
        Coupon.objects.filter(pk=coupon.pk).update(issued_count=2)
