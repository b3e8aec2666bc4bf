from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.coupons.errors import CouponNotUsable
from apps.coupons.models import Coupon
from apps.coupons.selectors import CouponForOrder, coupons_of, usable_coupon_for_order
from apps.coupons.services import coupon_restore, coupon_use

pytestmark = pytest.mark.django_db


def test_a_held_unused_unexpired_coupon_is_usable_with_its_rate(make_user, give_coupon):
    # given
    user = make_user()
    user_coupon = give_coupon(user, rate="0.25")

    # when
    usable = usable_coupon_for_order(user_coupon_id=user_coupon.pk, user_id=user.pk)

    # then
    assert usable == CouponForOrder(user_coupon_id=user_coupon.pk, discount_rate=Decimal("0.25"))


def test_a_coupon_the_user_does_not_hold_is_not_usable(make_user, give_coupon):
    # given
    owner, other = make_user(), make_user()
    user_coupon = give_coupon(owner)

    # when / then
    with pytest.raises(CouponNotUsable) as refused:
        usable_coupon_for_order(user_coupon_id=user_coupon.pk, user_id=other.pk)
    assert refused.value.code == "coupon_not_usable"
    with pytest.raises(CouponNotUsable):
        usable_coupon_for_order(user_coupon_id=987_654_321, user_id=owner.pk)


def test_a_used_coupon_is_not_usable_until_it_is_restored(make_user, give_coupon):
    # given
    user = make_user()
    user_coupon = give_coupon(user)
    coupon_use(order_id=1, user_coupon_id=user_coupon.pk, user_id=user.pk)

    # when / then
    with pytest.raises(CouponNotUsable, match="already used"):
        usable_coupon_for_order(user_coupon_id=user_coupon.pk, user_id=user.pk)
    coupon_restore(order_id=1)
    assert usable_coupon_for_order(user_coupon_id=user_coupon.pk, user_id=user.pk).user_coupon_id == user_coupon.pk


def test_an_expired_coupon_is_not_usable(make_user, give_coupon):
    # given
    user = make_user()
    user_coupon = give_coupon(user)
    Coupon.objects.filter(pk=user_coupon.coupon_id).update(expires_at=timezone.now() - timedelta(seconds=1))

    # when / then
    with pytest.raises(CouponNotUsable, match="expired"):
        usable_coupon_for_order(user_coupon_id=user_coupon.pk, user_id=user.pk)


def test_coupons_of_lists_only_the_users_coupons_newest_first(make_user, give_coupon):
    # given
    user, other = make_user(), make_user()
    older = give_coupon(user)
    newer = give_coupon(user)
    give_coupon(other)

    # then
    assert [user_coupon.pk for user_coupon in coupons_of(user_id=user.pk)] == [newer.pk, older.pk]
