"""No saga hangs: an order whose steps never report is failed by the sweeper, and steps that arrive
after it are refused rather than taking effect after their compensation."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.balance.models import BalanceStep
from apps.balance.selectors import balance_of
from apps.balance.services import balance_refund
from apps.coupons.models import CouponStep, UserCoupon
from apps.coupons.services import coupon_restore
from apps.orders.consistency import violations
from apps.orders.models import Order
from apps.orders.services import orders_recover
from apps.orders.tasks import sweep_orders_task
from apps.products.models import Stock, StockStep
from apps.products.services import stock_restore
from common.steps import StepState
from eventbus.models import OutboxMessage
from tests.saga.conftest import event_counts, settled
from tests.saga_worker import running_worker

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_order_past_its_deadline_is_failed_and_its_late_steps_are_refused(
    transactional_db, settings, make_user, make_product, give_coupon, place_order, published_events
):
    # given an order whose steps are still queued (no worker yet) and whose deadline has passed
    user = make_user(balance=50_000)
    product = make_product(price=10_000, stock=3)
    user_coupon = give_coupon(user, rate="0.1")
    order_id = place_order(user, [(product.pk, 2)], user_coupon.pk)
    Order.objects.filter(pk=order_id).update(created_at=timezone.now() - timedelta(seconds=61))

    # when the sweeper fails it and the compensations run before the late steps are delivered
    assert orders_recover() == {"failed": 1}
    assert (balance_refund(order_id=order_id), coupon_restore(order_id=order_id), stock_restore(order_id=order_id)) == (
        False,
        False,
        False,
    )
    late_steps = OutboxMessage.objects.filter(order_id=order_id, event_type="OrderCreated")
    assert late_steps.count() == 3 and not late_steps.filter(handled_at__isnull=False).exists()
    with running_worker(purge=False):
        order = settled(order_id, "FAILED")

    # then the late steps ran and took nothing: each found its compensation's tombstone and,
    # the order being already failed, published nothing
    assert not late_steps.filter(handled_at__isnull=True).exists()
    assert order.failure_reason == "the saga passed its deadline before every step reported"
    assert balance_of(user_id=user.pk) == 50_000
    assert Stock.objects.get(product=product).quantity == 3
    assert UserCoupon.objects.get(pk=user_coupon.pk).status == "UNUSED"
    counts = event_counts(published_events)
    assert counts["OrderFailed"] == 1 and counts["OrderPaymentWaited"] == 0
    assert counts["BalanceUseFailed"] == counts["CouponUseFailed"] == counts["StockDeductFailed"] == 0
    for step_model in (BalanceStep, CouponStep, StockStep):
        assert step_model.objects.get(order_id=order_id).state == StepState.COMPENSATED
    assert violations(published_events) == []


def test_the_sweeper_leaves_orders_within_their_deadline_and_decided_orders_alone(
    transactional_db, make_user, make_product, place_order
):
    user = make_user(balance=50_000)
    product = make_product(price=10_000, stock=3)
    fresh = place_order(user, [(product.pk, 1)])
    old_but_decided = place_order(user, [(product.pk, 1)])
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Order.objects.filter(pk=old_but_decided).update(status="COMPLETED", created_at=an_hour_ago)

    assert sweep_orders_task.apply().get() == {}

    assert Order.objects.get(pk=fresh).status == "CREATED"
    assert Order.objects.get(pk=old_but_decided).status == "COMPLETED"
