"""First come, first served: many issue requests racing for a coupon."""

from collections import Counter

import pytest

from apps.coupons.models import Coupon, UserCoupon
from apps.orders.consistency import violations
from tests.concurrency.conftest import post_all

pytestmark = pytest.mark.django_db(transaction=True)


def issue_path(user) -> str:
    return f"/api/v1/users/{user.pk}/coupons/issue"


def test_fifty_users_for_ten_coupons_get_exactly_ten(make_user, make_coupon, client_for, published_events):
    # given: a coupon of which 10 may be issued, and 50 users who want one
    coupon = make_coupon(quantity=10)
    users = [make_user() for _ in range(50)]
    clients = [client_for(user) for user in users]

    # when: all of them ask at the same moment
    responses = post_all(clients, [issue_path(user) for user in users], [{"coupon_id": coupon.pk}] * len(users))

    # then: exactly 10 get it, the other 40 are told it ran out, and the counter agrees with the rows
    assert Counter(response.status_code for response in responses) == {201: 10, 400: 40}
    refused = [response.json()["code"] for response in responses if response.status_code == 400]
    assert refused == ["coupon_sold_out"] * 40
    winners = {user.pk for user, response in zip(users, responses, strict=True) if response.status_code == 201}
    holders = UserCoupon.objects.filter(coupon=coupon)
    assert set(holders.values_list("user_id", flat=True)) == winners
    assert sorted(holders.values_list("pk", flat=True)) == sorted(
        r.json()["id"] for r in responses if r.status_code == 201
    )
    assert Coupon.objects.get(pk=coupon.pk).issued_count == 10
    assert violations(published_events) == []


def test_one_user_asking_ten_times_at_once_gets_one_coupon(make_user, make_coupon, client_for, published_events):
    # given: a coupon with plenty left and one user
    coupon = make_coupon(quantity=10)
    user = make_user()
    clients = [client_for(user) for _ in range(10)]

    # when: the user sends ten issue requests at the same moment
    responses = post_all(clients, issue_path(user), [{"coupon_id": coupon.pk}] * len(clients))

    # then: one is issued and the other nine are told the user already holds it
    assert Counter(response.status_code for response in responses) == {201: 1, 400: 9}
    refused = [response.json()["code"] for response in responses if response.status_code == 400]
    assert refused == ["coupon_already_issued"] * 9
    (issued,) = [response.json() for response in responses if response.status_code == 201]
    assert list(UserCoupon.objects.filter(coupon=coupon).values_list("pk", "user_id")) == [(issued["id"], user.pk)]
    assert Coupon.objects.get(pk=coupon.pk).issued_count == 1
    assert violations(published_events) == []
