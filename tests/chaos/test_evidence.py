"""chaos.report's evidence and failure kinds, built from what the apps declare (their invariants.py and
participant.py) rather than from a list of them in chaos/."""

import json

import pytest

from apps.orders.services import OrderLineInput, order_create
from chaos.report import _failure_kind, failure_kinds, save_evidence
from common.participants import step_names


@pytest.mark.django_db
def test_the_evidence_file_holds_what_each_app_says_of_the_orders_named(make_user, make_product, tmp_path):
    order = order_create(user_id=make_user(balance=100_000).pk, lines=[OrderLineInput(make_product().pk, 1)])
    named = order_create(user_id=make_user(balance=100_000).pk, lines=[OrderLineInput(make_product().pk, 1)])

    path = save_evidence(found=[f"completed order {named.pk}: uses [], refunds []"], stuck=[order.pk], log_dir=tmp_path)

    evidence = json.loads(path.read_text())
    assert set(evidence["orders"]) == {str(order.pk), str(named.pk)}
    of_order = evidence["orders"][str(order.pk)]
    assert [row["id"] for row in of_order["orders"]["order"]] == [order.pk]
    assert {"eventbus", "balance", "products", "coupons", "payments", "dataplatform"} <= set(of_order)


def test_a_failed_step_is_told_by_its_participants_name():
    assert [kind for kind, _ in failure_kinds()][: len(step_names())] == list(step_names())
    assert _failure_kind("balance step failed: insufficient balance; stock step failed: none left") == "balance+stock"
    assert _failure_kind("payment failed: declined by the card issuer") == "declined"
    assert _failure_kind("something else") == "other"
