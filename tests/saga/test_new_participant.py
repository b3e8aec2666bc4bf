"""A fourth participant, added as a new participant is meant to be added: one folder (tests/loyalty, loyalty
points reserved on OrderCreated, earned on OrderCompleted, given back on OrderFailed or OrderCanceled) and
its route lines (tests/loyalty/routes.py). Nothing else in the shop knows of it, yet the orders app waits
for its step, decides on it, recovers it after Redis lost it, and the API shows it; a real worker runs
every saga here."""

import random

import pytest

from apps.orders.consistency import violations
from apps.orders.events import OrderCreated
from apps.orders.models import Order
from apps.orders.process import process_key
from apps.orders.services import orders_recover
from common.participants import participant, step_names
from common.redis import redis_client
from config.celery import app
from eventbus.models import OutboxMessage
from tests.loyalty.models import EntryKind, PointsAccount, PointsEntry
from tests.loyalty.services import points_account_open, points_for
from tests.participants import all_steps, deliver_again, listeners_of, run_every_step
from tests.saga.conftest import finished, settled, side_effects
from tests.saga_worker import wait_until_idle

pytestmark = pytest.mark.django_db(transaction=True)

PRICE = 12_300


def ledger_of(order_id: int) -> list[str]:
    return list(PointsEntry.objects.filter(order_id=order_id).order_by("pk").values_list("kind", flat=True))


def account_of(user) -> tuple[int, int]:
    account = PointsAccount.objects.get(user_id=user.pk)
    return account.points, account.reserved


SHOP_CODE = ("apps", "bench", "chaos", "common", "config", "eventbus", "idempotency", "scripts")


def test_outside_its_folder_only_the_test_settings_name_it(settings):
    # The test settings install it and name its route module: the two lines a new participant adds to
    # the shop (for a shipped one: INSTALLED_APPS and config/event_routes.py).
    naming = sorted(
        str(path.relative_to(settings.BASE_DIR))
        for folder in SHOP_CODE
        for path in (settings.BASE_DIR / folder).rglob("*")
        if path.is_file() and path.suffix in (".py", ".sh", ".html") and "loyalty" in path.read_text().lower()
    )
    assert naming == ["config/settings/test.py"]


def test_the_new_participant_is_declared_and_routed_without_the_shop_naming_it():
    assert "points" in step_names()
    assert participant("points").applies is not None  # it takes part only in some orders
    reserving = [listener.task.name for listener in listeners_of(OrderCreated)]
    assert "tests.loyalty.tasks.reserve_points_task" in reserving


def test_a_customer_with_points_account_completes_and_earns_the_points(
    saga_worker, make_user, make_product, place_order, client_for, published_events
):
    # given
    user = make_user(balance=100_000)
    points_account_open(user_id=user.pk)
    product = make_product(price=PRICE, stock=5)

    # when
    order_id = place_order(user, [(product.pk, 2)])

    # then: the order waited for the points step, completed, and the reservation was settled
    order = settled(order_id, "COMPLETED")
    assert "points" in order.participants
    assert order.steps == all_steps()
    assert ledger_of(order_id) == [EntryKind.RESERVE, EntryKind.EARN]
    assert account_of(user) == (points_for(2 * PRICE), 0)
    assert client_for(user).get(f"/api/v1/orders/{order_id}").json()["steps"] == all_steps()
    assert violations(published_events) == []


def test_a_refused_points_step_fails_the_order_and_every_other_step_is_undone(
    saga_worker, make_user, make_product, place_order, published_events
):
    # given a frozen points account
    user = make_user(balance=100_000)
    points_account_open(user_id=user.pk, frozen=True)
    product = make_product(price=PRICE, stock=5)

    # when
    order_id = place_order(user, [(product.pk, 2)])

    # then
    order = finished(order_id)
    assert order.status == "FAILED"
    assert order.failure_reason == "points step failed: the points account is frozen"
    assert order.steps == all_steps(points="FAILED")
    assert ledger_of(order_id) == []
    assert violations(published_events) == []  # the balance was refunded and the stock restored


def test_another_step_failing_releases_the_reserved_points(
    saga_worker, make_user, make_product, place_order, published_events
):
    # given a customer whose order the stock step refuses
    user = make_user(balance=100_000)
    points_account_open(user_id=user.pk)
    product = make_product(price=PRICE, stock=1)

    # when
    order_id = place_order(user, [(product.pk, 2)])

    # then: whatever the order in which the steps ran, the points held for it are free again
    order = finished(order_id)
    assert order.status == "FAILED" and order.steps["stock"] == "FAILED"
    assert ledger_of(order_id) in ([EntryKind.RESERVE, EntryKind.RELEASE], [])
    assert account_of(user) == (0, 0)
    assert violations(published_events) == []


def test_cancelling_a_completed_order_takes_back_the_points_it_earned(
    saga_worker, make_user, make_product, place_order, client_for, published_events
):
    # given a completed order that earned points
    user = make_user(balance=100_000)
    points_account_open(user_id=user.pk)
    product = make_product(price=PRICE, stock=5)
    order_id = place_order(user, [(product.pk, 1)])
    settled(order_id, "COMPLETED")

    # when
    assert client_for(user).post(f"/api/v1/orders/{order_id}/cancel").status_code == 202

    # then
    settled(order_id, "CANCELED")
    assert ledger_of(order_id) == [EntryKind.RESERVE, EntryKind.EARN, EntryKind.REVOKE]
    assert account_of(user) == (0, 0)
    assert violations(published_events) == []


def test_its_saga_delivered_again_moves_no_point(
    saga_worker, make_user, make_product, place_order, client_for, published_events, published_envelopes
):
    # given a completed order that earned points, then was cancelled (reserve, earn, revoke)
    user = make_user(balance=100_000)
    points_account_open(user_id=user.pk)
    order_id = place_order(user, [(make_product(price=PRICE, stock=5).pk, 1)])
    settled(order_id, "COMPLETED")
    assert client_for(user).post(f"/api/v1/orders/{order_id}/cancel").status_code == 202
    settled(order_id, "CANCELED")
    before = (ledger_of(order_id), account_of(user), side_effects())
    envelopes = list(published_envelopes)
    random.Random(11).shuffle(envelopes)

    # when every event of the saga is delivered again to every listener, in any order
    assert deliver_again(envelopes) > 0
    wait_until_idle()

    # then nothing moves, its points included
    assert (ledger_of(order_id), account_of(user), side_effects()) == before
    assert violations(published_events) == []


def test_an_order_it_does_not_concern_costs_it_no_task(saga_worker, make_user, make_product, place_order):
    # given a customer without a points account
    user = make_user(balance=100_000)
    product = make_product(price=PRICE, stock=5)

    # when
    order_id = place_order(user, [(product.pk, 1)])

    # then the order completes without waiting for the points step, which counts as SUCCESS
    order = settled(order_id, "COMPLETED")
    assert "points" not in order.participants
    assert order.steps == all_steps()
    assert not OutboxMessage.objects.filter(order_id=order_id, listener__startswith="tests.loyalty.").exists()


def test_recovery_rebuilds_the_new_step_from_its_records_after_redis_lost_it(
    make_user, make_product, place_order, settings
):
    # given an order whose steps all ran but whose results were never recorded (they wait in the broker,
    # and no worker runs), and Redis lost the process hash
    settings.EVENTBUS_INLINE_LISTENERS = False
    user = make_user(balance=100_000)
    points_account_open(user_id=user.pk)
    product = make_product(price=PRICE, stock=5)
    order_id = place_order(user, [(product.pk, 1)])
    outcomes = run_every_step(Order.objects.get(pk=order_id))
    app.control.purge()
    redis_client().delete(process_key(order_id))
    assert Order.objects.get(pk=order_id).status == "CREATED"
    assert set(outcomes) == {"balance", "points", "stock"} and all(o.succeeded for o in outcomes.values())

    # when the sweep finds it stale
    settings.SAGA_RECONCILE_AFTER_SECONDS = 0
    assert orders_recover() == {"reconciled": 1}

    # then it is decided from every participant's records, the new one's included
    order = Order.objects.get(pk=order_id)
    assert order.status == "PAYMENT_WAITING" and order.steps == all_steps()
