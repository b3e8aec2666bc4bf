from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from apps.products.rank import rank_add_order, rank_key, rank_remove_order, rank_top
from common.redis import redis_client

SEOUL = ZoneInfo("Asia/Seoul")
TODAY = date(2026, 11, 21)


@pytest.fixture(autouse=True)
def seoul_time(settings):
    settings.TIME_ZONE = "Asia/Seoul"


def at_noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=SEOUL)


def scores(day: date) -> dict[int, int]:
    return {int(member): int(score) for member, score in redis_client().zrange(rank_key(day), 0, -1, withscores=True)}


def test_an_order_is_counted_on_its_local_day():
    # given 20:30 UTC on the 21st, which is 05:30 on the 22nd in Seoul
    sold_at = datetime(2026, 11, 21, 20, 30, tzinfo=ZoneInfo("UTC"))

    # when
    added = rank_add_order(order_id=1, sold_at=sold_at, lines=[(7, 2), (8, 1)])

    # then
    assert added is True
    assert rank_key(date(2026, 11, 22)) == "rank:sales:20261122"
    assert scores(date(2026, 11, 22)) == {7: 2, 8: 1}
    assert not redis_client().exists(rank_key(date(2026, 11, 21)))


def test_orders_add_up_and_a_repeated_order_adds_nothing():
    # given
    rank_add_order(order_id=1, sold_at=at_noon(TODAY), lines=[(7, 2)])
    rank_add_order(order_id=2, sold_at=at_noon(TODAY), lines=[(7, 3), (8, 1)])

    # when
    repeated = rank_add_order(order_id=2, sold_at=at_noon(TODAY), lines=[(7, 3), (8, 1)])

    # then
    assert repeated is False
    assert scores(TODAY) == {7: 5, 8: 1}


def test_the_day_key_expires_after_the_rank_window():
    # when
    rank_add_order(order_id=1, sold_at=at_noon(TODAY), lines=[(7, 1)])

    # then the key outlives the three days it is read for, and then goes
    ttl = redis_client().ttl(rank_key(TODAY))
    assert 3 * 24 * 3600 < ttl <= 4 * 24 * 3600


def test_a_days_keys_expire_together():
    # given a day counted, then cancelled from (its counted orders, its cancelled orders)
    rank_add_order(order_id=1, sold_at=at_noon(TODAY), lines=[(7, 1)])
    rank_add_order(order_id=2, sold_at=at_noon(TODAY), lines=[(7, 1)])
    rank_remove_order(order_id=2, sold_at=at_noon(TODAY))

    # then
    keys = [rank_key(TODAY), f"{rank_key(TODAY)}:orders", f"{rank_key(TODAY)}:canceled"]
    assert all(3 * 24 * 3600 < redis_client().ttl(key) <= 4 * 24 * 3600 for key in keys)


def test_the_top_sums_the_last_three_days_including_today_and_ignores_older_days():
    # given
    rank_add_order(order_id=1, sold_at=at_noon(TODAY), lines=[(1, 1)])
    rank_add_order(order_id=2, sold_at=at_noon(TODAY - timedelta(days=1)), lines=[(1, 2), (2, 4)])
    rank_add_order(order_id=3, sold_at=at_noon(TODAY - timedelta(days=2)), lines=[(1, 3)])
    rank_add_order(order_id=4, sold_at=at_noon(TODAY - timedelta(days=3)), lines=[(1, 100), (3, 100)])
    rank_add_order(order_id=5, sold_at=at_noon(TODAY + timedelta(days=1)), lines=[(4, 100)])

    # when
    top = rank_top(today=TODAY)

    # then
    assert top == [(1, 6), (2, 4)]


def test_the_top_has_at_most_five_most_sold_first():
    # given seven products sold 1..7 units, and a tie between products 20 and 21
    for units in range(1, 8):
        rank_add_order(order_id=units, sold_at=at_noon(TODAY), lines=[(units, units)])
    rank_add_order(order_id=100, sold_at=at_noon(TODAY), lines=[(21, 6), (20, 6)])

    # when
    top = rank_top(today=TODAY)

    # then ties are broken by the product id
    assert top == [(7, 7), (6, 6), (20, 6), (21, 6), (5, 5)]


def test_the_top_of_days_without_sales_is_empty():
    # then
    assert rank_top(today=TODAY) == []


def test_the_top_defaults_to_the_local_today():
    # given
    rank_add_order(order_id=1, sold_at=datetime.now(SEOUL), lines=[(9, 4)])

    # then
    assert rank_top() == [(9, 4)]


def test_a_cancelled_order_loses_its_units_once_and_a_product_at_zero_leaves_the_rank():
    # given two orders counted today
    rank_add_order(order_id=1, sold_at=at_noon(TODAY), lines=[(7, 2), (8, 1)])
    rank_add_order(order_id=2, sold_at=at_noon(TODAY), lines=[(7, 3)])

    # when the first is cancelled, and its cancellation delivered twice
    removed = rank_remove_order(order_id=1, sold_at=at_noon(TODAY))
    repeated = rank_remove_order(order_id=1, sold_at=at_noon(TODAY))

    # then
    assert (removed, repeated) == (True, False)
    assert scores(TODAY) == {7: 3}


def test_a_cancellation_that_arrives_before_the_count_refuses_the_late_count():
    # given the cancellation of an order whose completion was not counted yet
    removed = rank_remove_order(order_id=1, sold_at=at_noon(TODAY))

    # when its count arrives late
    added = rank_add_order(order_id=1, sold_at=at_noon(TODAY), lines=[(7, 2)])

    # then neither changes the rank
    assert (removed, added) == (False, False)
    assert scores(TODAY) == {}


def test_a_cancellation_takes_the_units_off_the_day_they_were_counted_on():
    yesterday = TODAY - timedelta(days=1)
    rank_add_order(order_id=1, sold_at=at_noon(yesterday), lines=[(7, 2)])
    rank_add_order(order_id=2, sold_at=at_noon(TODAY), lines=[(7, 1)])

    rank_remove_order(order_id=1, sold_at=at_noon(yesterday))

    assert (scores(yesterday), scores(TODAY)) == ({}, {7: 1})
