"""Rebuilds of the daily rank racing the listeners: customers complete and cancel orders from several
threads (each completion counted by its inline listener as its commit ends, some delivered twice, each
cancellation taken off by its listener) while other threads rebuild the day from PostgreSQL, and Redis
even restarts empty between a rebuild's read and its merge.

Each rebuild reads slowly (a pause after its read, as a busy database or a stalled process makes), so
that listeners come between its read and its merge; the rebuilds stop while orders still go on, and the
day must then equal what PostgreSQL says without a last rebuild: a rebuild that lost a count, or merged
a read older than a restart, would leave it wrong."""

import random
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction

from apps.products import rank
from apps.products.rank import REBUILD_ATTEMPTS, rank_drift, rank_lost_days, rank_rebuild, rank_restore_lost
from apps.products.sales import sales_on, shop_today
from apps.products.tasks import add_to_rank_task, remove_from_rank_task
from common.redis import redis_client
from tests.products.test_rank_rebuild import cancel, complete, counted, held

pytestmark = pytest.mark.django_db(transaction=True)

SHOPPERS, ORDERS_EACH = 4, 60
REBUILDS_EACH = 8
READ_PAUSE = 0.04  # seconds between a rebuild's read and its merge
UNCOUNTED = 20  # orders completed before the race whose counts Redis never got


class Race:
    def __init__(self, monkeypatch, *, rebuilders: int = 2):
        self.rebuilders = rebuilders
        self.errors: list[BaseException] = []
        self.completed = 0
        self.reads = 0  # the rebuilds' reads of PostgreSQL so far
        self.read = threading.Condition()
        self._lock = threading.Lock()

        def slow_read(day):
            sales = sales_on(day)
            with self.read:
                self.reads += 1
                self.read.notify_all()
            time.sleep(READ_PAUSE)
            return sales

        monkeypatch.setattr(rank, "sales_on", slow_read)

    def run(self, work, *args) -> threading.Thread:
        def guarded():
            try:
                work(*args)
            except BaseException as error:
                self.errors.append(error)
            finally:
                connection.close()

        thread = threading.Thread(target=guarded)
        thread.start()
        return thread

    def wait_for_read(self, number: int) -> bool:
        with self.read:
            return self.read.wait_for(lambda: self.reads >= number, timeout=3)

    @property
    def shopping(self) -> bool:
        return self.completed < SHOPPERS * ORDERS_EACH

    def shop(self, first_order_id: int) -> None:
        rng = random.Random(first_order_id)
        for order_id in range(first_order_id, first_order_id + ORDERS_EACH):
            with transaction.atomic():
                completed = complete(order_id, (rng.randint(1, 5), rng.randint(1, 3)), (rng.randint(1, 5), 1))
            with self._lock:
                self.completed += 1
            if rng.random() < 0.3:
                add_to_rank_task(completed)  # delivered again
            if rng.random() < 0.3:
                self.cancel(completed, twice=rng.random() < 0.5)

    def cancel(self, completed: dict, *, twice: bool) -> None:
        with transaction.atomic():
            canceled = cancel(completed)
        for _ in range(2 if twice else 1):
            remove_from_rank_task(canceled)

    def rebuild(self) -> None:
        for _ in range(REBUILDS_EACH):
            rank_rebuild(shop_today())

    def race(self, *others: threading.Thread, uncounted: list[dict]) -> bool:
        """Shop, cancel some of the uncounted orders and rebuild at once; returns whether orders still
        went on when the rebuilds ended."""
        rebuilders = [self.run(self.rebuild) for _ in range(self.rebuilders)]
        shoppers = [self.run(self.shop, 1_000 * (number + 1)) for number in range(SHOPPERS)]
        shoppers.append(self.run(lambda: [self.cancel(completed, twice=False) for completed in uncounted[::4]]))
        for thread in rebuilders:
            thread.join(60)
        still_shopping = self.shopping
        for thread in [*shoppers, *others]:
            thread.join(60)
        assert self.errors == []
        return still_shopping


def uncounted_orders(settings) -> list[dict]:
    """Orders PostgreSQL knows as completed whose listeners are queued and never run."""
    settings.EVENTBUS_INLINE_LISTENERS = False
    try:
        return [complete(order_id, (order_id % 5 + 1, 2)) for order_id in range(1, UNCOUNTED + 1)]
    finally:
        settings.EVENTBUS_INLINE_LISTENERS = True


def assert_equal_to_postgresql() -> None:
    today = shop_today()
    sales = sales_on(today)
    assert today not in rank_lost_days()
    assert rank_drift() == []
    assert held(today) == sales.units()
    assert counted(today) == set(sales.sold)
    assert sales.canceled  # the race did cancel orders


def test_rebuilds_racing_completions_and_cancels_end_equal_to_postgresql(settings, monkeypatch):
    # given
    uncounted = uncounted_orders(settings)
    race = Race(monkeypatch)

    # when customers complete and cancel orders while the day is rebuilt, again and again
    still_shopping = race.race(uncounted=uncounted)

    # then
    assert still_shopping
    assert_equal_to_postgresql()


def test_rebuilds_racing_the_listeners_and_redis_restarts_end_equal_to_postgresql(settings, monkeypatch):
    # given
    uncounted = uncounted_orders(settings)
    race = Race(monkeypatch, rebuilders=1)

    def restart_redis_during_the_last_rebuild():
        # Between the last rebuild's read and its merge, then between its second read and merge: fewer
        # restarts than its attempts, so that it may meet them all and still merge. Nothing rebuilds after.
        for read in range(REBUILDS_EACH, REBUILDS_EACH + REBUILD_ATTEMPTS - 1):
            if not race.wait_for_read(read):
                return  # the last rebuild did not read again
            time.sleep(READ_PAUSE / 2)  # counts come after the read, and are lost with the restart
            redis_client().flushdb()

    # when Redis restarts empty during the last rebuild, between its read and its merge, while customers shop
    still_shopping = race.race(race.run(restart_redis_during_the_last_rebuild), uncounted=uncounted)

    # then the day is equal to PostgreSQL; the other days, lost with the restarts, are rebuilt on reading
    reads = race.reads
    assert still_shopping
    assert_equal_to_postgresql()
    assert reads == REBUILDS_EACH + REBUILD_ATTEMPTS - 1  # the last rebuild read three times
    assert rank_lost_days() == [shop_today() - timedelta(days=1), shop_today() - timedelta(days=2)]
    assert rank_restore_lost().rebuilt == [shop_today() - timedelta(days=1), shop_today() - timedelta(days=2)]
