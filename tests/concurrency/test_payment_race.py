"""One order's payment delivered many times at the same moment (a redelivery racing the first delivery)."""

from collections import Counter

import pytest

from apps.payments.events import PaymentPaid
from apps.payments.models import Payment, PaymentStatus
from apps.payments.services import payment_pay
from tests.concurrency.conftest import orders_with_tasks_purged, race, values

pytestmark = pytest.mark.django_db(transaction=True)

RACERS = 8


@pytest.mark.parametrize("round_", range(5))
def test_pays_at_once_for_one_order_make_one_payment_and_report_it_once(
    round_, make_user, make_product, published_events, settings
):
    # given an order waiting for its payment, and a gateway that approves
    settings.PAYMENT_DECLINE_RATE = 0
    user = make_user(balance=10_000)
    [order] = orders_with_tasks_purged(user_id=user.pk, product_id=make_product(price=10_000).pk, count=1)

    # when its payment is run by several deliveries at the same moment
    payments = values(race(RACERS, lambda _: payment_pay(order_id=order.pk, user_id=user.pk, amount=order.total_price)))

    # then there is one payment, every delivery saw it, and it was charged and reported once
    assert {payment.pk for payment in payments} == {Payment.objects.get(order_id=order.pk).pk}
    assert Payment.objects.get(order_id=order.pk).status == PaymentStatus.COMPLETED
    paid = [event for event in published_events if isinstance(event, PaymentPaid)]
    assert Counter(event.order_id for event in paid) == {order.pk: 1}
