from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.products.events import StockDeducted, StockDeductFailed, StockRestored
from apps.products.models import MovementKind, Product, ProductStatus, Stock, StockMovement, StockStep
from common.db import locked_values, update_each
from common.errors import ApplicationError, NotFound
from common.steps import StepOutcome, StepRejected, run_compensations, run_steps
from eventbus import publish_all


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
    adding = Stock.objects.filter(product_id=product_id)
    if not adding.update(quantity=F("quantity") + quantity, updated_at=timezone.now()):
        raise NotFound(f"Product {product_id} does not exist.")
    StockMovement.objects.create(product_id=product_id, kind=MovementKind.ADD, delta=quantity)
    return Stock.objects.get(product_id=product_id).quantity


@dataclass(frozen=True)
class StockTake:
    order_id: int
    lines: tuple[StockLine, ...]


def stock_take(orders: Iterable[StockTake]) -> dict[int, str]:
    """The stock step's effect for many orders at once (no step records, no events): every line of an
    order or, if one product is short, none of them; orders in order of order id. Returns the refused
    orders' reasons."""
    orders = sorted(orders, key=lambda order: order.order_id)
    stock = _locked_stock(line.product_id for order in orders for line in order.lines)
    refused, movements = {}, []
    for order in orders:
        needed = Counter()
        for line in order.lines:
            needed[line.product_id] += line.quantity
        short = next((pid for pid in sorted(needed) if stock.get(pid, -1) < needed[pid]), None)
        if short is not None:
            refused[order.order_id] = f"insufficient stock for product {short}"
            continue
        for product_id, quantity in needed.items():
            stock[product_id] -= quantity
        movements += [
            StockMovement(
                product_id=line.product_id, kind=MovementKind.DEDUCT, delta=-line.quantity, order_id=order.order_id
            )
            for line in order.lines
        ]
    _write_movements(stock, movements)
    return refused


def _locked_stock(product_ids: Iterable[int]) -> dict[int, int]:
    return locked_values(Stock, key="product_id", field="quantity", keys=product_ids)


def _write_movements(stock: dict[int, int], movements: list[StockMovement]) -> None:
    """Write the moved products' stock as `stock` says (one statement) and record the movements (one
    statement). Call with the products' stock locked (_locked_stock)."""
    if movements:
        update_each(
            Stock, key="product_id", field="quantity", values={m.product_id: stock[m.product_id] for m in movements}
        )
        StockMovement.objects.bulk_create(movements)


def stock_deduct_apply(*, order_id: int, lines: Iterable[StockLine]) -> None:
    """The stock step's effect for one order: every line or, with StepRejected, none."""
    refused = stock_take([StockTake(order_id=order_id, lines=tuple(lines))])
    if refused:
        raise StepRejected(refused[order_id])


@transaction.atomic(savepoint=False)
def stock_deduct_many(orders: Iterable[StockTake]) -> dict[int, StepOutcome]:
    """The stock step for many orders in one transaction: all lines of an order or none, each order
    taking its units once and reporting StockDeducted or StockDeductFailed on its own. Orders seen before
    are reported repeated and publish nothing (the outbox delivers the report of their decision)."""
    by_order = {order.order_id: order for order in orders}
    outcomes = run_steps(StockStep, order_ids=by_order, apply=lambda new: stock_take(by_order[i] for i in new))
    publish_all(
        StockDeducted(order_id=order_id)
        if outcome.succeeded
        else StockDeductFailed(order_id=order_id, reason=outcome.reason)
        for order_id, outcome in outcomes.items()
        if not outcome.repeated
    )
    return outcomes


def stock_deduct(*, order_id: int, lines: Iterable[StockLine]) -> StepOutcome:
    """The stock step for one order: all lines or none."""
    return stock_deduct_many([StockTake(order_id=order_id, lines=tuple(lines))])[order_id]


def _restore_all(order_ids: list[int]) -> None:
    """Put back what each order's DEDUCT movements took."""
    deducted = list(StockMovement.objects.filter(order_id__in=order_ids, kind=MovementKind.DEDUCT).order_by("pk"))
    stock = _locked_stock(movement.product_id for movement in deducted)
    for movement in deducted:
        stock[movement.product_id] -= movement.delta
    _write_movements(
        stock,
        [
            StockMovement(product_id=m.product_id, kind=MovementKind.RESTORE, delta=-m.delta, order_id=m.order_id)
            for m in deducted
        ],
    )


@transaction.atomic(savepoint=False)
def stock_restore_many(order_ids: Iterable[int]) -> list[int]:
    """Compensation, for many orders in one transaction: put back what each order's stock step took, if it
    took anything, once per order; each restore reports StockRestored. Returns the orders restored."""
    restored = run_compensations(StockStep, order_ids=list(order_ids), undo=_restore_all)
    publish_all(StockRestored(order_id=order_id) for order_id in restored)
    return restored


def stock_restore(*, order_id: int) -> bool:
    """Compensation for one order: put back what its stock step took, if it took anything. Once."""
    return bool(stock_restore_many([order_id]))
