"""The saga's process state in Redis (docs/design.md §4): the hash per order and the order's lock."""

import time

import pytest
from django.conf import settings

from apps.orders.process import OrderLockBusy, order_lock, read_steps, record_step
from common.errors import RetryableError
from common.redis import redis_client
from tests.participants import all_steps


def test_a_step_result_is_written_to_the_orders_process_hash():
    # when
    record_step(42, "balance", succeeded=True)
    record_step(42, "stock", succeeded=False, reason="out of stock")

    # then
    assert redis_client().hgetall("order:42:process") == {
        b"balance": b"SUCCESS",
        b"stock": b"FAILED",
        b"stock_reason": b"out of stock",
    }


def test_record_step_returns_every_step_with_a_missing_field_read_as_pending():
    # when
    steps, reasons = record_step(42, "coupon", succeeded=False, reason="the coupon has expired")

    # then
    assert steps == all_steps("PENDING", coupon="FAILED")
    assert reasons == {"coupon": "the coupon has expired"}


def test_the_first_report_of_a_step_wins():
    # given
    record_step(42, "stock", succeeded=False, reason="out of stock")

    # when the same step reports again, differently
    steps, reasons = record_step(42, "stock", succeeded=True)

    # then
    assert steps["stock"] == "FAILED" and reasons == {"stock": "out of stock"}
    assert redis_client().hgetall("order:42:process") == {b"stock": b"FAILED", b"stock_reason": b"out of stock"}


def test_the_process_hash_outlives_the_saga_deadline():
    # when
    record_step(42, "balance", succeeded=True)

    # then
    ttl = redis_client().ttl("order:42:process")
    assert settings.SAGA_DEADLINE_SECONDS < ttl <= settings.SAGA_PROCESS_TTL_SECONDS


def test_read_steps_reads_several_orders_and_an_unknown_order_as_all_pending():
    # given
    record_step(1, "balance", succeeded=True)
    record_step(2, "stock", succeeded=False, reason="out of stock")

    # when
    steps = read_steps([1, 2, 3])

    # then
    assert steps == {
        1: all_steps("PENDING", balance="SUCCESS"),
        2: all_steps("PENDING", stock="FAILED"),
        3: all_steps("PENDING"),
    }
    assert not redis_client().exists("order:3:process")


def test_the_order_lock_is_a_lease_on_its_key_held_only_inside_the_block():
    # when
    with order_lock(42):
        # then
        lease_ms = redis_client().pttl("lock:order:42")
        assert 0 < lease_ms <= settings.ORDER_LOCK_LEASE_SECONDS * 1000
    assert not redis_client().exists("lock:order:42")


def test_a_held_order_lock_makes_the_next_caller_wait_a_bounded_time_and_give_up_retryably(settings):
    # given
    settings.ORDER_LOCK_WAIT_SECONDS = 0.2
    holder = redis_client().lock("lock:order:42", timeout=30)
    assert holder.acquire(blocking=False)

    # when
    started = time.monotonic()
    with pytest.raises(OrderLockBusy) as busy, order_lock(42):
        pytest.fail("the lock was entered while someone else held it")

    # then
    assert isinstance(busy.value, RetryableError)
    assert time.monotonic() - started < 2
    assert holder.owned()
    holder.release()


def test_another_orders_lock_does_not_block():
    # given
    holder = redis_client().lock("lock:order:41", timeout=30)
    assert holder.acquire(blocking=False)

    # when / then
    with order_lock(42):
        assert redis_client().exists("lock:order:42")
    holder.release()


def test_a_holder_whose_lease_ran_out_leaves_the_new_holders_lock_alone(settings):
    # given a holder whose lease runs out while it still works
    settings.ORDER_LOCK_LEASE_SECONDS = 0.1
    successor = redis_client().lock("lock:order:42", timeout=30)

    # when someone else takes the lock meanwhile, and the first holder then finishes
    with order_lock(42):
        time.sleep(0.2)
        assert successor.acquire(blocking=False)

    # then the first holder's release did not take the successor's lock
    assert successor.owned()
    successor.release()
