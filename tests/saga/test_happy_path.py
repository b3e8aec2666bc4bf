import pytest

from apps.balance.selectors import balance_of
from apps.coupons.models import UserCoupon
from apps.dataplatform.models import Delivery
from apps.orders.consistency import violations
from apps.orders.models import Order
from apps.payments.models import Payment
from apps.products.models import Stock
from tests.participants import all_steps
from tests.saga_worker import wait_for, wait_until_idle

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_order_with_a_coupon_completes_and_everything_adds_up(
    saga_worker, make_user, make_product, give_coupon, client_for, published_events
):
    # given
    user = make_user(balance=100_000)
    product = make_product(price=12_345, stock=10)
    user_coupon = give_coupon(user, rate="0.15")
    client = client_for(user)

    # when
    response = client.post(
        "/api/v1/orders",
        {"items": [{"product_id": product.pk, "quantity": 3}], "user_coupon_id": user_coupon.pk},
        format="json",
    )

    # then
    assert response.status_code == 201, response.json()
    order_id = response.json()["id"]
    assert response.json()["status"] == "CREATED"
    wait_for(lambda: Order.objects.get(pk=order_id).status == "COMPLETED", message="order completed")
    wait_until_idle()
    gross = 3 * 12_345
    discount = gross * 15 // 100  # floor(37035 × 0.15) = 5555
    body = client.get(f"/api/v1/orders/{order_id}").json()
    assert body["gross_price"] == gross and body["discount_price"] == discount == 5555
    assert body["total_price"] == gross - discount
    assert body["steps"] == all_steps()
    assert body["payment"]["status"] == "COMPLETED" and body["payment"]["amount"] == gross - discount
    assert body["completed_at"] is not None
    assert balance_of(user_id=user.pk) == 100_000 - (gross - discount)
    assert Stock.objects.get(product=product).quantity == 7
    assert UserCoupon.objects.get(pk=user_coupon.pk).used_by_order_id == order_id
    assert Payment.objects.get(order_id=order_id).status == "COMPLETED"
    assert client.get("/api/v1/products/ranks").json() == [
        {"id": product.pk, "name": product.name, "price": 12_345, "sold_quantity": 3}
    ]
    assert Delivery.objects.get(order_id=order_id).status == "RECORDED"
    assert violations(published_events) == []
