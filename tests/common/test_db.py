"""insert_or_skip: one INSERT ... ON CONFLICT DO NOTHING, as safe as get_or_create under races."""

import pytest

from apps.dataplatform.models import Delivery, DeliveryStatus
from common.db import insert_or_skip
from tests.concurrency.conftest import race, values

UNIQUE = ("order_id", "event_type")  # a delivery is once per order and event


@pytest.mark.django_db
def test_a_new_row_is_inserted_with_its_defaults_and_the_instance_counts_as_saved():
    delivery = Delivery(order_id=7, payload={"order_id": 7})

    assert insert_or_skip(delivery, unique=UNIQUE) is True

    stored = Delivery.objects.get(order_id=7)
    assert delivery.pk == stored.pk and not delivery._state.adding
    assert (stored.payload, stored.status, stored.attempts) == ({"order_id": 7}, DeliveryStatus.PENDING, 0)
    assert stored.created_at is not None and stored.created_at == delivery.created_at


@pytest.mark.django_db
def test_a_row_with_the_same_unique_value_is_left_as_it_is():
    Delivery.objects.create(order_id=7, payload={"first": True})
    late = Delivery(order_id=7, payload={"first": False})

    assert insert_or_skip(late, unique=UNIQUE) is False

    assert late.pk is None and late._state.adding
    assert list(Delivery.objects.values_list("payload", flat=True)) == [{"first": True}]


@pytest.mark.django_db(transaction=True)
def test_many_inserts_of_the_same_value_at_once_insert_exactly_one_row():
    inserted = values(race(12, lambda i: insert_or_skip(Delivery(order_id=7, payload={"racer": i}), unique=UNIQUE)))

    assert inserted.count(True) == 1
    assert Delivery.objects.filter(order_id=7).count() == 1


@pytest.mark.django_db
def test_the_unique_fields_are_those_of_the_constraint_together():
    Delivery.objects.create(order_id=7, payload={"completed": True})
    cancellation = Delivery(order_id=7, event_type="OrderCanceled", payload={"canceled": True})

    assert insert_or_skip(cancellation, unique=UNIQUE) is True
    assert insert_or_skip(Delivery(order_id=7, event_type="OrderCanceled", payload={}), unique=UNIQUE) is False

    assert sorted(Delivery.objects.values_list("event_type", flat=True)) == ["OrderCanceled", "OrderCompleted"]
