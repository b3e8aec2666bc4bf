"""insert_or_skip: one INSERT ... ON CONFLICT DO NOTHING, as safe as get_or_create under races."""

import pytest

from apps.dataplatform.models import Delivery, DeliveryStatus
from common.db import insert_or_skip
from tests.concurrency.conftest import race, values


@pytest.mark.django_db
def test_a_new_row_is_inserted_with_its_defaults_and_the_instance_counts_as_saved():
    delivery = Delivery(order_id=7, payload={"order_id": 7})

    assert insert_or_skip(delivery, unique="order_id") is True

    stored = Delivery.objects.get(order_id=7)
    assert delivery.pk == stored.pk and not delivery._state.adding
    assert (stored.payload, stored.status, stored.attempts) == ({"order_id": 7}, DeliveryStatus.PENDING, 0)
    assert stored.created_at is not None and stored.created_at == delivery.created_at


@pytest.mark.django_db
def test_a_row_with_the_same_unique_value_is_left_as_it_is():
    Delivery.objects.create(order_id=7, payload={"first": True})
    late = Delivery(order_id=7, payload={"first": False})

    assert insert_or_skip(late, unique="order_id") is False

    assert late.pk is None and late._state.adding
    assert list(Delivery.objects.values_list("payload", flat=True)) == [{"first": True}]


@pytest.mark.django_db(transaction=True)
def test_many_inserts_of_the_same_value_at_once_insert_exactly_one_row():
    inserted = values(race(12, lambda i: insert_or_skip(Delivery(order_id=7, payload={"racer": i}), unique="order_id")))

    assert inserted.count(True) == 1
    assert Delivery.objects.filter(order_id=7).count() == 1
