"""The ids a listener's run binds (eventbus.log_context): its envelope's while it runs, a batch's as lists, and
whatever was bound before once it ends, however it ends."""

import pytest
import structlog

from eventbus.log_context import handling_logged, task_log_ids


def envelope(order_id: int, event_id: str) -> dict:
    return {
        "event_id": event_id,
        "event_type": "OrderCreated",
        "correlation_id": f"order-{order_id}",
        "data": {"order_id": order_id},
    }


@pytest.fixture(autouse=True)
def clean_context():
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()


def test_a_run_binds_its_envelopes_ids_and_gives_back_the_outer_ones():
    # given: a task handling order 1 (bound at its start), which runs an inline listener for order 2
    structlog.contextvars.bind_contextvars(task_id="t-1", request_id="r-1", **task_log_ids((envelope(1, "e-1"),), {}))

    # when / then
    with handling_logged([envelope(2, "e-2")]):
        inner = structlog.contextvars.get_contextvars()
    assert inner == {
        "task_id": "t-1",
        "request_id": "r-1",
        "event_id": "e-2",
        "event_type": "OrderCreated",
        "correlation_id": "order-2",
        "order_id": 2,
    }
    assert structlog.contextvars.get_contextvars()["order_id"] == 1


def test_a_batch_binds_lists_and_hides_the_ids_of_the_one_order_it_was_sent_for_even_when_it_fails():
    structlog.contextvars.bind_contextvars(task_id="t-1", request_id="r-1", **task_log_ids((envelope(1, "e-1"),), {}))
    before = structlog.contextvars.get_contextvars()

    with pytest.raises(LookupError), handling_logged([envelope(1, "e-1"), envelope(3, "e-3")]):
        inner = structlog.contextvars.get_contextvars()
        raise LookupError

    assert inner == {
        "task_id": "t-1",
        "event_ids": ["e-1", "e-3"],
        "correlation_ids": ["order-1", "order-3"],
        "order_ids": [1, 3],
    }
    assert structlog.contextvars.get_contextvars() == before


def test_a_task_without_an_envelope_binds_nothing():
    assert task_log_ids((), {}) == task_log_ids((42,), {}) == {}
    with handling_logged([]):
        assert structlog.contextvars.get_contextvars() == {}
