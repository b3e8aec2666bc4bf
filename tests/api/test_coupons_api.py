"""GET /api/v1/users/{user_id}/coupons and POST /api/v1/users/{user_id}/coupons/issue."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.coupons.models import Coupon, UserCoupon
from apps.coupons.services import coupon_issue, coupon_use
from tests.api import assert_error

pytestmark = pytest.mark.django_db

USER_COUPON_KEYS = {"id", "coupon_id", "name", "discount_rate", "status", "expires_at"}


def _issue(client, user, coupon_id):
    return client.post(f"/api/v1/users/{user.pk}/coupons/issue", {"coupon_id": coupon_id}, format="json")


def test_a_user_without_coupons_lists_none(make_user, give_coupon, client_for):
    # given
    user = make_user()
    give_coupon(make_user())

    # when
    response = client_for(user).get(f"/api/v1/users/{user.pk}/coupons")

    # then
    assert response.status_code == 200, response.json()
    assert response.json() == []


def test_the_coupon_list_shows_the_users_coupons_in_the_documented_shape(
    make_user, make_coupon, make_product, client_for
):
    # given: one coupon held, one used by an order (its coupon step run here by hand), one of someone else
    user = make_user(balance=100_000)
    client = client_for(user)
    coupon = make_coupon(rate="0.15", name="spring sale")
    held = coupon_issue(coupon_id=coupon.pk, user_id=user.pk)
    used = coupon_issue(coupon_id=make_coupon(rate="0.5").pk, user_id=user.pk)
    order = client.post(
        "/api/v1/orders",
        {"items": [{"product_id": make_product().pk, "quantity": 1}], "user_coupon_id": used.pk},
        format="json",
    )
    assert order.status_code == 201, order.json()
    assert coupon_use(order_id=order.json()["id"], user_coupon_id=used.pk, user_id=user.pk).succeeded
    coupon_issue(coupon_id=coupon.pk, user_id=make_user().pk)

    # when
    response = client.get(f"/api/v1/users/{user.pk}/coupons")

    # then
    assert response.status_code == 200, response.json()
    rows = {row["id"]: row for row in response.json()}
    assert set(rows) == {held.pk, used.pk}
    assert all(set(row) == USER_COUPON_KEYS for row in rows.values())
    assert rows[held.pk]["coupon_id"] == coupon.pk
    assert rows[held.pk]["name"] == "spring sale"
    assert rows[held.pk]["discount_rate"] == 0.15
    assert isinstance(rows[held.pk]["discount_rate"], float)
    assert rows[held.pk]["status"] == "UNUSED"
    assert parse_datetime(rows[held.pk]["expires_at"]) == coupon.expires_at
    assert rows[used.pk]["status"] == "USED"
    assert rows[used.pk]["discount_rate"] == 0.5


def test_issuing_a_coupon_answers_201_with_the_user_coupon(make_user, make_coupon, client_for):
    # given
    user = make_user()
    coupon = make_coupon(rate="0.25", quantity=3, name="welcome")
    client = client_for(user)

    # when
    response = _issue(client, user, coupon.pk)

    # then
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == USER_COUPON_KEYS
    user_coupon = UserCoupon.objects.get(coupon=coupon, user=user)
    assert body["id"] == user_coupon.pk
    assert body["coupon_id"] == coupon.pk
    assert body["name"] == "welcome"
    assert body["discount_rate"] == 0.25
    assert body["status"] == "UNUSED"
    assert parse_datetime(body["expires_at"]) == coupon.expires_at
    assert client.get(f"/api/v1/users/{user.pk}/coupons").json() == [body]
    coupon.refresh_from_db()
    assert coupon.issued_count == 1


def test_a_coupon_is_issued_to_a_user_only_once(make_user, make_coupon, client_for):
    # given
    user = make_user()
    coupon = make_coupon(quantity=3)
    client = client_for(user)
    first = _issue(client, user, coupon.pk)
    assert first.status_code == 201, first.json()

    # when
    second = _issue(client, user, coupon.pk)

    # then
    assert_error(second, 400, "coupon_already_issued")
    assert UserCoupon.objects.filter(coupon=coupon, user=user).count() == 1
    coupon.refresh_from_db()
    assert coupon.issued_count == 1


def test_a_sold_out_coupon_is_refused(make_user, make_coupon, client_for):
    # given
    coupon = make_coupon(quantity=1)
    coupon_issue(coupon_id=coupon.pk, user_id=make_user().pk)
    user = make_user()

    # when
    response = _issue(client_for(user), user, coupon.pk)

    # then
    assert_error(response, 400, "coupon_sold_out")
    assert not UserCoupon.objects.filter(user=user).exists()
    coupon.refresh_from_db()
    assert coupon.issued_count == 1


def test_a_coupon_of_quantity_0_is_sold_out_at_once(make_user, make_coupon, client_for):
    # given
    coupon = make_coupon(quantity=0)
    user = make_user()

    # when
    response = _issue(client_for(user), user, coupon.pk)

    # then
    assert_error(response, 400, "coupon_sold_out")
    assert not UserCoupon.objects.exists()


def test_an_unknown_coupon_is_not_found(make_user, make_coupon, client_for):
    # given
    user = make_user()
    missing_id = make_coupon().pk + 1_000

    # when
    response = _issue(client_for(user), user, missing_id)

    # then
    assert_error(response, 404, "not_found")
    assert not UserCoupon.objects.exists()


def test_an_expired_coupon_is_not_issued(make_user, make_coupon, client_for):
    # given
    coupon = make_coupon(quantity=5, expires_in=timedelta(seconds=-1))
    user = make_user()

    # when
    response = _issue(client_for(user), user, coupon.pk)

    # then
    assert_error(response, 400, "coupon_not_usable")
    assert not UserCoupon.objects.exists()
    assert Coupon.objects.get(pk=coupon.pk).issued_count == 0


@pytest.mark.parametrize(
    "body",
    [{}, {"coupon_id": None}, {"coupon_id": "abc"}, {"coupon_id": 0}, {"coupon_id": -3}, {"coupon_id": 1.5}],
    ids=["missing", "null", "string", "zero", "negative", "float"],
)
def test_an_issue_with_a_bad_coupon_id_is_a_validation_error(make_user, make_coupon, client_for, body):
    # given
    user = make_user()
    make_coupon()

    # when
    response = client_for(user).post(f"/api/v1/users/{user.pk}/coupons/issue", body, format="json")

    # then
    error = assert_error(response, 400, "validation_error")
    assert "coupon_id" in error["details"]["fields"], error
    assert not UserCoupon.objects.exists()


def test_an_issue_of_a_huge_coupon_id_is_not_found(make_user, make_coupon, client_for):
    # given
    user = make_user()
    make_coupon()

    # when
    response = _issue(client_for(user), user, 2**70)

    # then
    assert_error(response, 404, "not_found")
    assert not UserCoupon.objects.exists()


def test_the_coupon_list_expiry_is_an_iso_datetime(make_user, make_coupon, client_for):
    # given
    user = make_user()
    coupon = make_coupon(expires_in=timedelta(days=3))
    coupon_issue(coupon_id=coupon.pk, user_id=user.pk)

    # when
    [row] = client_for(user).get(f"/api/v1/users/{user.pk}/coupons").json()

    # then
    expires_at = parse_datetime(row["expires_at"])
    assert expires_at is not None and expires_at.tzinfo is not None
    assert expires_at > timezone.now() + timedelta(days=2)
