from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F

from apps.products.events import StockDeducted, StockDeductFailed, StockRestored
from apps.products.models import MovementKind, Product, ProductStatus, Stock, StockMovement, StockStep
from common.errors import ApplicationError, NotFound
from common.steps import StepOutcome, StepRejected, run_compensation, run_step
from eventbus import publish


@dataclass(frozen=True)
class StockLine:
    product_id: int
    quantity: int


def product_create(*, name: str, price: int, stock: int = 0, status: str = ProductStatus.SELLING) -> Product:
    if price <= 0:
        raise ApplicationError("A product's price must be greater than 0.", code="validation_error")
    if stock < 0:
        raise ApplicationError("Initial stock cannot be negative.", code="validation_error")
    try:
        with transaction.atomic():
            product = Product.objects.create(name=name, price=price, status=status)
            Stock.objects.create(product=product, quantity=0)
            if stock:
                stock_add(product_id=product.pk, quantity=stock)
    except IntegrityError:
        raise ApplicationError(f"A product named {name!r} already exists.", code="validation_error") from None
    return product


@transaction.atomic
def stock_add(*, product_id: int, quantity: int) -> int:
    """An operator adds units; returns the new stock."""
    if quantity <= 0:
        raise ApplicationError("Units to add must be greater than 0.", code="validation_error")
    if not Stock.objects.filter(product_id=product_id).update(quantity=F("quantity") + quantity):
        raise NotFound(f"Product {product_id} does not exist.")
    StockMovement.objects.create(product_id=product_id, kind=MovementKind.ADD, delta=quantity)
    return Stock.objects.get(product_id=product_id).quantity


def stock_deduct_apply(*, order_id: int, lines: Iterable[StockLine]) -> None:
    """The stock step's effect alone (no step record, no event): every line or, with StepRejected, none."""
    # A fixed order (by product id) so that two orders locking the same rows never deadlock.
    lines = sorted(lines, key=lambda item: item.product_id)
    for line in lines:
        taken = Stock.objects.filter(product_id=line.product_id, quantity__gte=line.quantity).update(
            quantity=F("quantity") - line.quantity
        )
        if not taken:
            raise StepRejected(f"insufficient stock for product {line.product_id}")
    StockMovement.objects.bulk_create(
        StockMovement(product_id=line.product_id, kind=MovementKind.DEDUCT, delta=-line.quantity, order_id=order_id)
        for line in lines
    )


@transaction.atomic
def stock_deduct(*, order_id: int, lines: Iterable[StockLine]) -> StepOutcome:
    """The stock step: all lines or none. Reports StockDeducted or StockDeductFailed."""
    lines = tuple(lines)
    outcome = run_step(StockStep, order_id=order_id, apply=lambda: stock_deduct_apply(order_id=order_id, lines=lines))
    if outcome.repeated:
        return outcome  # reported when it was decided; the outbox delivers that report
    if outcome.succeeded:
        publish(StockDeducted(order_id=order_id))
    else:
        publish(StockDeductFailed(order_id=order_id, reason=outcome.reason))
    return outcome


def _restore_all(order_id: int) -> None:
    deducted = list(StockMovement.objects.filter(order_id=order_id, kind=MovementKind.DEDUCT).order_by("product_id"))
    for movement in deducted:
        Stock.objects.filter(product_id=movement.product_id).update(quantity=F("quantity") - movement.delta)
    StockMovement.objects.bulk_create(
        StockMovement(product_id=m.product_id, kind=MovementKind.RESTORE, delta=-m.delta, order_id=order_id)
        for m in deducted
    )


@transaction.atomic
def stock_restore(*, order_id: int) -> bool:
    """Compensation: put back what this order's stock step took, if it took anything. Once."""
    restored = run_compensation(StockStep, order_id=order_id, undo=lambda: _restore_all(order_id))
    if restored:
        publish(StockRestored(order_id=order_id))
    return restored
