from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.products.events import StockDeducted, StockDeductFailed, StockRestored
from apps.products.models import MovementKind, Product, ProductStatus, Stock, StockMovement, StockStep
from apps.products.services import StockLine, product_create, stock_add, stock_deduct, stock_restore
from common.errors import ApplicationError, NotFound
from common.steps import REFUSED_AFTER_COMPENSATION, StepOutcome, StepState

pytestmark = pytest.mark.django_db


def stock_of(product: Product) -> int:
    return Stock.objects.get(product=product).quantity


def movements_of(product: Product) -> list[tuple[str, int, int | None]]:
    return [(m.kind, m.delta, m.order_id) for m in StockMovement.objects.filter(product=product).order_by("id")]


# --- product_create and stock_add --------------------------------------------------------------


def test_create_makes_the_product_its_stock_and_an_add_movement():
    # when
    product = product_create(name="Kettle", price=25_000, stock=7)

    # then
    product.refresh_from_db()
    assert (product.name, product.price, product.status) == ("Kettle", 25_000, ProductStatus.SELLING)
    assert stock_of(product) == 7
    assert movements_of(product) == [(MovementKind.ADD, 7, None)]


def test_create_without_stock_has_a_zero_stock_row_and_no_movement():
    # when
    product = product_create(name="Teapot", price=1, status=ProductStatus.HOLD)

    # then
    assert stock_of(product) == 0
    assert movements_of(product) == []
    assert Product.objects.get(pk=product.pk).status == ProductStatus.HOLD


@pytest.mark.parametrize(("price", "stock"), [(0, 1), (-5, 1), (100, -1)], ids=["zero price", "negative", "stock"])
def test_create_refuses_a_non_positive_price_or_negative_stock(price, stock):
    # when
    with pytest.raises(ApplicationError) as refused:
        product_create(name="Bad", price=price, stock=stock)

    # then
    assert refused.value.code == "validation_error"
    assert not Product.objects.exists()


def test_create_refuses_a_duplicate_name_and_keeps_the_first_product(make_product):
    # given
    first = make_product(name="Mug", price=5_000, stock=3)

    # when
    with pytest.raises(ApplicationError) as refused:
        product_create(name="Mug", price=9_000, stock=4)

    # then
    assert refused.value.code == "validation_error"
    assert list(Product.objects.values_list("pk", "price")) == [(first.pk, 5_000)]
    assert StockMovement.objects.count() == 1


def test_stock_add_adds_units_with_a_movement(make_product):
    # given
    product = make_product(stock=2)

    # when
    new_stock = stock_add(product_id=product.pk, quantity=5)

    # then
    assert new_stock == stock_of(product) == 7
    assert movements_of(product) == [(MovementKind.ADD, 2, None), (MovementKind.ADD, 5, None)]


@pytest.mark.parametrize("quantity", [0, -1])
def test_stock_add_refuses_a_non_positive_quantity(make_product, quantity):
    # given
    product = make_product(stock=2)

    # when
    with pytest.raises(ApplicationError) as refused:
        stock_add(product_id=product.pk, quantity=quantity)

    # then
    assert refused.value.code == "validation_error"
    assert stock_of(product) == 2


def test_stock_add_to_an_unknown_product_is_not_found():
    # when / then
    with pytest.raises(NotFound):
        stock_add(product_id=987_654_321, quantity=1)
    assert not StockMovement.objects.exists()


# --- stock_deduct ------------------------------------------------------------------------------


def test_deduct_takes_every_line_and_records_a_movement_per_product(make_product, published_events):
    # given
    kettle, mug = make_product(stock=5), make_product(stock=3)

    # when
    outcome = stock_deduct(
        order_id=41, lines=[StockLine(product_id=mug.pk, quantity=3), StockLine(product_id=kettle.pk, quantity=2)]
    )

    # then
    assert outcome == StepOutcome(succeeded=True)
    assert (stock_of(kettle), stock_of(mug)) == (3, 0)
    assert movements_of(kettle)[-1] == (MovementKind.DEDUCT, -2, 41)
    assert movements_of(mug)[-1] == (MovementKind.DEDUCT, -3, 41)
    assert StockStep.objects.get(order_id=41).state == StepState.APPLIED
    assert published_events == [StockDeducted(order_id=41)]


def test_deduct_is_all_or_nothing_when_one_product_is_short(make_product, published_events):
    # given the first products by id have enough, the last one does not
    plenty, enough, short = make_product(stock=10), make_product(stock=4), make_product(stock=1)

    # when
    outcome = stock_deduct(
        order_id=42,
        lines=[
            StockLine(product_id=plenty.pk, quantity=3),
            StockLine(product_id=enough.pk, quantity=4),
            StockLine(product_id=short.pk, quantity=2),
        ],
    )

    # then
    reason = f"insufficient stock for product {short.pk}"
    assert outcome == StepOutcome(succeeded=False, reason=reason)
    assert (stock_of(plenty), stock_of(enough), stock_of(short)) == (10, 4, 1)
    assert not StockMovement.objects.filter(order_id=42).exists()
    assert StockStep.objects.get(order_id=42).state == StepState.REJECTED
    assert published_events == [StockDeductFailed(order_id=42, reason=reason)]


def test_deduct_of_an_unknown_product_is_rejected(make_product):
    # given
    product = make_product(stock=5)

    # when
    outcome = stock_deduct(
        order_id=43, lines=[StockLine(product_id=product.pk, quantity=1), StockLine(product_id=987_654, quantity=1)]
    )

    # then
    assert not outcome.succeeded
    assert stock_of(product) == 5


def test_a_repeated_deduct_for_the_same_order_takes_nothing_more(make_product, published_events):
    # given
    product = make_product(stock=5)
    lines = [StockLine(product_id=product.pk, quantity=2)]
    stock_deduct(order_id=44, lines=lines)

    # when
    repeat = stock_deduct(order_id=44, lines=lines)

    # then
    assert repeat == StepOutcome(succeeded=True, repeated=True)
    assert stock_of(product) == 3
    assert StockMovement.objects.filter(order_id=44).count() == 1
    assert published_events == [StockDeducted(order_id=44)]


# --- stock_restore -----------------------------------------------------------------------------


def test_restore_puts_back_exactly_what_the_order_took_once(make_product, published_events):
    # given
    kettle, mug = make_product(stock=5), make_product(stock=3)
    stock_deduct(
        order_id=51, lines=[StockLine(product_id=kettle.pk, quantity=2), StockLine(product_id=mug.pk, quantity=1)]
    )
    stock_add(product_id=mug.pk, quantity=10)  # unrelated stock arriving in between stays
    published_events.clear()

    # when
    first = stock_restore(order_id=51)
    second = stock_restore(order_id=51)

    # then
    assert (first, second) == (True, False)
    assert (stock_of(kettle), stock_of(mug)) == (5, 13)
    assert movements_of(kettle)[-1] == (MovementKind.RESTORE, 2, 51)
    assert StockMovement.objects.filter(order_id=51, kind=MovementKind.RESTORE).count() == 2
    assert StockStep.objects.get(order_id=51).state == StepState.COMPENSATED
    assert published_events == [StockRestored(order_id=51)]


def test_restore_for_a_rejected_deduct_does_nothing(make_product, published_events):
    # given
    product = make_product(stock=1)
    stock_deduct(order_id=52, lines=[StockLine(product_id=product.pk, quantity=2)])
    published_events.clear()

    # when
    restored = stock_restore(order_id=52)

    # then
    assert restored is False
    assert stock_of(product) == 1
    assert not StockMovement.objects.filter(order_id=52).exists()
    assert published_events == []


def test_a_restore_before_the_deduct_leaves_a_tombstone_that_refuses_the_late_deduct(make_product, published_events):
    # given
    product = make_product(stock=5)

    # when
    restored = stock_restore(order_id=53)
    late = stock_deduct(order_id=53, lines=[StockLine(product_id=product.pk, quantity=2)])

    # then
    assert restored is False
    assert late == StepOutcome(succeeded=False, reason=REFUSED_AFTER_COMPENSATION, repeated=True)
    assert stock_of(product) == 5
    assert not StockMovement.objects.filter(order_id=53).exists()
    assert StockStep.objects.get(order_id=53).state == StepState.COMPENSATED
    assert published_events == []


# --- database constraints ----------------------------------------------------------------------


def test_the_database_refuses_a_negative_stock(make_product):
    # given
    product = make_product(stock=1)

    # when / then
    with pytest.raises(IntegrityError), transaction.atomic():
        Stock.objects.filter(product=product).update(quantity=-1)
    assert stock_of(product) == 1


def test_the_database_refuses_a_second_deduct_movement_for_one_order_and_product(make_product):
    # given
    product = make_product(stock=5)
    stock_deduct(order_id=61, lines=[StockLine(product_id=product.pk, quantity=1)])

    # when / then
    with pytest.raises(IntegrityError), transaction.atomic():
        StockMovement.objects.create(product=product, kind=MovementKind.DEDUCT, delta=-1, order_id=61)


@pytest.mark.django_db
def test_adding_units_moves_the_stocks_updated_at(make_product):
    product = make_product(stock=5)
    a_day_ago = timezone.now() - timedelta(days=1)
    Stock.objects.filter(product=product).update(updated_at=a_day_ago)

    stock_add(product_id=product.pk, quantity=3)

    assert Stock.objects.get(product=product).updated_at > a_day_ago
