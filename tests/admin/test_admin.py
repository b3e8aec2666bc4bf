"""The operators' admin: everything renders, lists search and filter, and every write goes through a
service (charges, products, stock, coupons, sending a delivery again) or is refused (orders, balances)."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from apps.balance.models import Balance, BalanceTransaction
from apps.balance.services import balance_use
from apps.coupons.models import Coupon
from apps.coupons.services import coupon_use
from apps.dataplatform.models import Delivery, DeliveryStatus
from apps.dataplatform.services import delivery_record
from apps.orders.models import Order, OrderStatus
from apps.orders.monitor import record_violations
from apps.orders.process import record_step
from apps.orders.services import OrderLineInput, order_complete, order_create, order_fail
from apps.orders.services.saga import UNDECIDED
from apps.payments.models import Payment
from apps.payments.services import payment_pay
from apps.products.models import MovementKind, Product, Stock, StockMovement
from apps.products.services import StockLine, stock_deduct
from eventbus.models import OutboxMessage
from tests.participants import all_steps, record_every_step
from tests.saga_worker import queued_messages, wait_for


@pytest.fixture
def operator_client(client, db):
    operator = get_user_model().objects.create_superuser(username="operator", email="", password=None)
    client.force_login(operator)
    return client


@pytest.fixture
def shop(make_user, make_product, give_coupon):
    """A completed order (with coupon, payment and delivery), a failed one and one still deciding."""
    alice = make_user(balance=100_000, username="alice")
    bob = make_user(balance=50_000, username="bob")
    kettle = make_product(price=10_000, stock=10, name="Kettle")
    toaster = make_product(price=20_000, stock=5, name="Toaster", status="HOLD")
    welcome = give_coupon(alice, rate="0.1", name="Welcome")

    completed = order_create(user_id=alice.pk, lines=[OrderLineInput(kettle.pk, 2)], user_coupon_id=welcome.pk)
    balance_use(order_id=completed.pk, user_id=alice.pk, amount=completed.total_price)
    coupon_use(order_id=completed.pk, user_coupon_id=welcome.pk, user_id=alice.pk)
    stock_deduct(order_id=completed.pk, lines=[StockLine(kettle.pk, 2)])
    record_every_step(completed)
    payment_pay(order_id=completed.pk, user_id=alice.pk, amount=completed.total_price)
    order_complete(order_id=completed.pk)
    delivery_record(order_id=completed.pk, payload={"order_id": completed.pk})

    failed = order_create(user_id=bob.pk, lines=[OrderLineInput(kettle.pk, 1)])
    order_fail(order_id=failed.pk, reason="the order passed its deadline", from_statuses=UNDECIDED)

    deciding = order_create(user_id=bob.pk, lines=[OrderLineInput(kettle.pk, 3)])
    record_step(deciding.pk, "balance", succeeded=True)
    # what the consistency monitor would keep of a ledger row gone behind the services' back
    record_violations([f"user {bob.pk}: balance 50000 != ledger 0"], timezone.now())
    return SimpleNamespace(
        alice=alice,
        bob=bob,
        kettle=kettle,
        toaster=toaster,
        completed=Order.objects.get(pk=completed.pk),
        failed=Order.objects.get(pk=failed.pk),
        deciding=deciding,
    )


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def shown(response) -> list:
    return list(response.context["cl"].result_list)


ADMIN_MODELS = [
    "orders.order",
    "orders.invariantviolation",
    "balance.balance",
    "balance.balancetransaction",
    "balance.balancestep",
    "coupons.coupon",
    "coupons.usercoupon",
    "coupons.couponstep",
    "products.product",
    "products.stockmovement",
    "products.stockstep",
    "payments.payment",
    "dataplatform.delivery",
    "eventbus.outboxmessage",
    "eventbus.eventrecord",
]


def test_the_admin_shows_every_model_of_the_shop():
    # when
    registered = {model._meta.label_lower for model in admin.site._registry}

    # then
    shop_apps = ("orders", "balance", "coupons", "products", "payments", "dataplatform", "eventbus")
    assert {label for label in registered if label.split(".")[0] in shop_apps} == set(ADMIN_MODELS)


@pytest.mark.django_db
@pytest.mark.parametrize("label", ADMIN_MODELS)
def test_every_changelist_and_change_page_renders(operator_client, shop, label):
    # given
    app_label, model_name = label.split(".")
    changelist = reverse(f"admin:{app_label}_{model_name}_changelist")

    # when
    listed = operator_client.get(changelist)

    # then
    assert listed.status_code == 200
    rows = shown(listed)
    assert rows, f"{label} has no rows to show"
    for row in rows:
        assert operator_client.get(reverse(f"admin:{app_label}_{model_name}_change", args=[row.pk])).status_code == 200


@pytest.mark.django_db
def test_an_order_page_shows_its_items_steps_payment_and_failure(operator_client, shop):
    # when
    page = operator_client.get(reverse("admin:orders_order_change", args=[shop.completed.pk]))
    completed = page.content.decode()
    failed = operator_client.get(reverse("admin:orders_order_change", args=[shop.failed.pk])).content.decode()
    deciding = operator_client.get(reverse("admin:orders_order_change", args=[shop.deciding.pk])).content.decode()

    # then
    assert shop.completed.status == OrderStatus.COMPLETED
    assert ", ".join(f"{step}: <strong>SUCCESS</strong>" for step in all_steps()) in completed
    payment = Payment.objects.get(order_id=shop.completed.pk)
    assert f"payment {payment.pk}</a>: COMPLETED ({shop.completed.total_price})" in completed
    [items] = page.context["inline_admin_formsets"]
    assert not (items.has_add_permission or items.has_change_permission or items.has_delete_permission)
    assert [(form.instance.product_id, form.instance.quantity) for form in items.formset] == [(shop.kettle.pk, 2)]
    assert f"Kettle (#{shop.kettle.pk})" in completed
    assert "the order passed its deadline" in failed
    assert "none: the order was FAILED before paying" in failed and "none yet" in deciding
    # A CREATED order shows the live process hash: balance reported, stock pending, no coupon to use.
    live = all_steps(stock="PENDING")
    assert ", ".join(f"{step}: <strong>{state}</strong>" for step, state in live.items()) in deciding


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status__exact=FAILED", {"failed"}),
        ("status__exact=COMPLETED", {"completed"}),
        ("q=alice", {"completed"}),
        ("q=bob", {"failed", "deciding"}),
    ],
)
def test_orders_are_searchable_and_filterable_by_status(operator_client, shop, query, expected):
    # when
    response = operator_client.get(f"{reverse('admin:orders_order_changelist')}?{query}")

    # then
    assert response.status_code == 200
    assert {order.pk for order in shown(response)} == {getattr(shop, name).pk for name in expected}


@pytest.mark.django_db
def test_orders_are_searchable_by_id(operator_client, shop):
    # when
    response = operator_client.get(reverse("admin:orders_order_changelist"), {"q": str(shop.failed.pk)})

    # then
    assert [order.pk for order in shown(response)] == [shop.failed.pk]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("label", "query", "expected"),
    [
        ("products.product", {"status__exact": "HOLD"}, ["Toaster"]),
        ("products.product", {"q": "kett"}, ["Kettle"]),
        ("coupons.usercoupon", {"status__exact": "USED"}, ["alice"]),
        ("coupons.usercoupon", {"status__exact": "UNUSED"}, []),
        ("coupons.usercoupon", {"q": "welcome"}, ["alice"]),
        ("balance.balance", {"q": "bob"}, ["bob"]),
        ("balance.balancetransaction", {"kind__exact": "USE"}, ["alice"]),
    ],
)
def test_lists_filter_by_status_and_search(operator_client, shop, label, query, expected):
    # given
    app_label, model_name = label.split(".")

    # when
    response = operator_client.get(reverse(f"admin:{app_label}_{model_name}_changelist"), query)

    # then
    rows = shown(response)
    names = [row.name if isinstance(row, Product) else row.user.username for row in rows]
    assert sorted(names) == expected


@pytest.mark.django_db
def test_payments_and_deliveries_are_found_by_order_and_status(operator_client, shop):
    # when
    payments = shown(operator_client.get(reverse("admin:payments_payment_changelist"), {"q": shop.completed.pk}))
    no_payment = shown(operator_client.get(reverse("admin:payments_payment_changelist"), {"q": shop.failed.pk}))
    completed = shown(operator_client.get(reverse("admin:payments_payment_changelist"), {"status__exact": "COMPLETED"}))
    dead = shown(operator_client.get(reverse("admin:dataplatform_delivery_changelist"), {"status__exact": "DEAD"}))
    pending = shown(
        operator_client.get(reverse("admin:dataplatform_delivery_changelist"), {"status__exact": "PENDING"})
    )

    # then
    assert [payment.order_id for payment in payments] == [shop.completed.pk]
    assert no_payment == []
    assert [payment.order_id for payment in completed] == [shop.completed.pk]
    assert dead == []
    assert [delivery.order_id for delivery in pending] == [shop.completed.pk]


@pytest.mark.django_db
def test_a_charge_goes_through_the_service_and_adds_a_charge_to_the_ledger(operator_client, make_user):
    # given
    carol = make_user(username="carol")

    # when
    response = operator_client.post(reverse("admin:balance_balance_add"), {"user": "carol", "amount": 30_000})

    # then
    assert response.status_code == 302
    assert response.url == reverse("admin:balance_balance_change", args=[carol.pk])
    assert Balance.objects.get(user=carol).amount == 30_000
    charge = BalanceTransaction.objects.get(user=carol)
    assert (charge.kind, charge.amount, charge.balance_after, charge.order_id) == ("CHARGE", 30_000, 30_000, None)
    assert LogEntry.objects.filter(object_id=str(carol.pk), change_message="Charged 30,000 won.").count() == 1
    page = operator_client.get(response.url).content.decode()
    assert "<td>CHARGE</td><td>+30,000</td><td>30,000</td>" in page and "All 1 entries" in page


@pytest.mark.django_db
def test_a_charge_above_the_limit_shows_the_error_and_changes_nothing(operator_client, make_user):
    # given
    dave = make_user(balance=9_990_000, username="dave")

    # when
    response = operator_client.post(reverse("admin:balance_balance_add"), {"user": "dave", "amount": 10_001})

    # then
    assert response.status_code == 200
    assert messages_of(response) == ["A balance may not exceed 10,000,000 won."]
    assert Balance.objects.get(user=dave).amount == 9_990_000
    assert list(BalanceTransaction.objects.filter(user=dave).values_list("kind", "amount")) == [("CHARGE", 9_990_000)]
    assert not LogEntry.objects.exists()


@pytest.mark.django_db
def test_a_charge_for_an_unknown_user_or_a_non_positive_amount_is_a_form_error(operator_client, make_user):
    # given
    make_user(username="erin")

    # when
    unknown = operator_client.post(reverse("admin:balance_balance_add"), {"user": "nobody", "amount": 1_000})
    zero = operator_client.post(reverse("admin:balance_balance_add"), {"user": "erin", "amount": 0})

    # then
    assert unknown.status_code == zero.status_code == 200
    assert unknown.context["form"].errors == {"user": ["No user has this username."]}
    assert list(zero.context["form"].errors) == ["amount"]
    assert not Balance.objects.exists() and not BalanceTransaction.objects.exists()


@pytest.mark.django_db
def test_a_balance_cannot_be_edited_or_deleted(operator_client, shop):
    # given
    change = reverse("admin:balance_balance_change", args=[shop.alice.pk])
    before = Balance.objects.get(user=shop.alice).amount

    # when
    edited = operator_client.post(change, {"amount": 9_999_999})
    deleted = operator_client.post(reverse("admin:balance_balance_delete", args=[shop.alice.pk]), {"post": "yes"})

    # then
    assert edited.status_code == deleted.status_code == 403
    assert Balance.objects.get(user=shop.alice).amount == before
    assert 'name="amount"' not in operator_client.get(change).content.decode()


@pytest.mark.django_db
def test_adding_a_product_creates_its_stock_and_an_add_movement(operator_client):
    # when
    response = operator_client.post(
        reverse("admin:products_product_add"),
        {"name": "Blender", "price": 45_000, "status": "SELLING", "initial_stock": 7},
    )

    # then
    assert response.status_code == 302
    product = Product.objects.get(name="Blender")
    assert (product.price, product.status) == (45_000, "SELLING")
    assert Stock.objects.get(product=product).quantity == 7
    assert list(StockMovement.objects.filter(product=product).values_list("kind", "delta", "order_id")) == [
        (MovementKind.ADD, 7, None)
    ]


@pytest.mark.django_db
def test_a_product_with_a_taken_name_or_a_zero_price_is_refused(operator_client, make_product):
    # given
    make_product(name="Blender", stock=1)

    # when
    taken = operator_client.post(
        reverse("admin:products_product_add"),
        {"name": "Blender", "price": 45_000, "status": "SELLING", "initial_stock": 7},
    )
    free = operator_client.post(
        reverse("admin:products_product_add"), {"name": "Mixer", "price": 0, "status": "SELLING", "initial_stock": 1}
    )

    # then
    assert taken.status_code == free.status_code == 200
    assert list(taken.context["adminform"].form.errors) == ["name"]
    assert list(free.context["adminform"].form.errors) == ["price"]
    assert list(Product.objects.values_list("name", flat=True)) == ["Blender"]
    assert StockMovement.objects.count() == 1


@pytest.mark.django_db
def test_editing_a_product_changes_name_price_and_status_but_never_stock(operator_client, shop):
    # given
    change = reverse("admin:products_product_change", args=[shop.kettle.pk])
    stock_before = Stock.objects.get(product=shop.kettle).quantity
    movements_before = StockMovement.objects.filter(product=shop.kettle).count()

    # when
    response = operator_client.post(
        change, {"name": "Kettle 2", "price": 12_000, "status": "STOP_SELLING", "stock_quantity": 999}
    )

    # then
    assert response.status_code == 302
    product = Product.objects.get(pk=shop.kettle.pk)
    assert (product.name, product.price, product.status) == ("Kettle 2", 12_000, "STOP_SELLING")
    assert Stock.objects.get(product=product).quantity == stock_before
    assert StockMovement.objects.filter(product=product).count() == movements_before
    assert (
        operator_client.post(reverse("admin:products_product_delete", args=[product.pk]), {"post": "yes"}).status_code
        == 403
    )


@pytest.mark.django_db
def test_the_add_stock_action_adds_units_through_the_service(operator_client, shop):
    # given
    changelist = reverse("admin:products_product_changelist")
    selected = {"action": "add_stock", "_selected_action": [shop.kettle.pk, shop.toaster.pk]}
    before = dict(Stock.objects.values_list("product_id", "quantity"))

    # when
    asked = operator_client.post(changelist, selected)
    refused = operator_client.post(changelist, {**selected, "apply": "1", "quantity": 0})
    applied = operator_client.post(changelist, {**selected, "apply": "1", "quantity": 4})

    # then
    assert asked.status_code == refused.status_code == 200
    assert list(refused.context["form"].errors) == ["quantity"]
    assert applied.status_code == 302
    assert dict(Stock.objects.values_list("product_id", "quantity")) == {
        shop.kettle.pk: before[shop.kettle.pk] + 4,
        shop.toaster.pk: before[shop.toaster.pk] + 4,
    }
    added = StockMovement.objects.filter(kind=MovementKind.ADD, delta=4, order_id=None)
    assert sorted(added.values_list("product_id", flat=True)) == [shop.kettle.pk, shop.toaster.pk]


@pytest.mark.django_db
def test_a_coupon_is_created_through_the_service_and_its_rate_must_be_within_zero_and_one(operator_client):
    # given
    expires_at = timezone.localtime() + timedelta(days=7)
    fields = {"name": "Spring", "quantity": 100, "expires_at_0": expires_at.date(), "expires_at_1": "12:00:00"}

    # when
    refused = operator_client.post(reverse("admin:coupons_coupon_add"), {**fields, "discount_rate": "1.5"})
    created = operator_client.post(reverse("admin:coupons_coupon_add"), {**fields, "discount_rate": "0.25"})

    # then
    assert refused.status_code == 200
    assert list(refused.context["adminform"].form.errors) == ["discount_rate"]
    assert created.status_code == 302
    coupon = Coupon.objects.get()
    assert (coupon.name, str(coupon.discount_rate), coupon.quantity, coupon.issued_count) == (
        "Spring",
        "0.2500",
        100,
        0,
    )
    change = operator_client.post(reverse("admin:coupons_coupon_change", args=[coupon.pk]), {**fields, "quantity": 1})
    assert change.status_code == 403
    assert Coupon.objects.get().quantity == 100


@pytest.mark.django_db
def test_orders_cannot_be_added_changed_or_deleted(operator_client, shop):
    # given
    order = shop.failed
    change = reverse("admin:orders_order_change", args=[order.pk])

    # when
    added = operator_client.get(reverse("admin:orders_order_add"))
    changed = operator_client.post(change, {"status": "COMPLETED", "failure_reason": "", "total_price": 1})
    deleted = operator_client.post(reverse("admin:orders_order_delete", args=[order.pk]), {"post": "yes"})

    # then
    assert added.status_code == changed.status_code == deleted.status_code == 403
    after = Order.objects.get(pk=order.pk)
    assert (after.status, after.failure_reason, after.total_price) == (
        OrderStatus.FAILED,
        "the order passed its deadline",
        order.total_price,
    )
    assert Order.objects.count() == 3


@pytest.mark.django_db
def test_send_again_refuses_a_delivery_that_is_not_dead(operator_client, shop):
    # given
    delivery = Delivery.objects.get(order_id=shop.completed.pk)

    # when
    response = operator_client.post(
        reverse("admin:dataplatform_delivery_changelist"),
        {"action": "send_again", "_selected_action": [delivery.pk]},
        follow=True,
    )

    # then
    assert messages_of(response) == [f"Order {shop.completed.pk}: Only a dead delivery can be sent again."]
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.PENDING


@pytest.mark.django_db(transaction=True)
def test_send_again_delivers_a_dead_delivery(saga_worker, operator_client, shop):
    # given
    delivery = Delivery.objects.get(order_id=shop.completed.pk)
    Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.DEAD, attempts=8, last_error="HTTP 503")

    # when
    response = operator_client.post(
        reverse("admin:dataplatform_delivery_changelist"),
        {"action": "send_again", "_selected_action": [delivery.pk]},
        follow=True,
    )

    # then
    assert messages_of(response) == ["1 delivery sent again."]
    wait_for(lambda: Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.RECORDED, message="delivered")
    delivered = Delivery.objects.get(pk=delivery.pk)
    assert (delivered.attempts, delivered.last_error) == (0, "")
    assert delivered.delivered_at is not None


@pytest.mark.django_db
def test_a_customer_is_sent_to_the_login_page(client, shop):
    # given
    client.force_login(shop.alice)

    # when
    response = client.get(reverse("admin:orders_order_changelist"))

    # then
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


@pytest.mark.django_db
def test_an_order_with_a_parked_listener_is_flagged_and_an_operator_sends_it_again(
    operator_client, shop, django_capture_on_commit_callbacks
):
    # given the failed order's refund kept failing and was parked
    refund = OutboxMessage.objects.get(order_id=shop.failed.pk, listener="apps.balance.tasks.refund_balance_task")
    OutboxMessage.objects.filter(pk=refund.pk).update(parked_at=timezone.now(), last_error="DataError: boom")
    changelist = reverse("admin:orders_order_changelist")

    # then it is flagged in the list, found by the filter, and its page shows the parked listener
    assert [order.pk for order in shown(operator_client.get(changelist, {"attention": "parked"}))] == [shop.failed.pk]
    flag = '<strong style="color: #ba2121">a listener is parked</strong>'
    assert operator_client.get(changelist).content.decode().count(flag) == 1
    page = operator_client.get(reverse("admin:orders_order_change", args=[shop.failed.pk])).content.decode()
    assert "PARKED" in page and "DataError: boom" in page

    # when the operator retries it
    queued_before = queued_messages()
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(
            changelist, {"action": "retry_parked_listeners", "_selected_action": [shop.failed.pk]}, follow=True
        )

    # then it is unparked and its task is back on the broker
    assert "Sent 1 parked listener task(s) again." in messages_of(response)
    refund.refresh_from_db()
    assert refund.parked_at is None and refund.dispatched_at is not None
    assert queued_messages() == queued_before + 1
    assert not shown(operator_client.get(changelist, {"attention": "parked"}))
    # and admin's history keeps what the operator did
    logged = LogEntry.objects.filter(object_id=str(shop.failed.pk)).values_list("change_message", flat=True)
    assert list(logged) == ["Retried parked listeners: refund_balance_task."]

    # when the retried task succeeds, its old error reads as an earlier one
    OutboxMessage.objects.filter(pk=refund.pk).update(handled_at=timezone.now())
    page = operator_client.get(reverse("admin:orders_order_change", args=[shop.failed.pk])).content.decode()
    assert "(before it succeeded) DataError: boom" in page


@pytest.mark.django_db
def test_an_operator_sends_an_outbox_row_again_and_admin_keeps_it_in_history(operator_client, shop):
    # given a parked row, and a handled one selected with it
    parked, handled = OutboxMessage.objects.filter(order_id=shop.failed.pk).order_by("pk")[:2]
    OutboxMessage.objects.filter(pk=parked.pk).update(parked_at=timezone.now(), handled_at=None)
    OutboxMessage.objects.filter(pk=handled.pk).update(handled_at=timezone.now(), parked_at=None)
    queued_before = queued_messages()

    # when the operator sends both again
    response = operator_client.post(
        reverse("admin:eventbus_outboxmessage_changelist"),
        {"action": "send_again", "_selected_action": [parked.pk, handled.pk]},
        follow=True,
    )

    # then only the unhandled one went, and admin's history says so
    assert "Sent 1 listener task(s) again." in messages_of(response)
    assert queued_messages() == queued_before + 1
    logged = LogEntry.objects.filter(change_message="Sent again.").values_list("object_id", flat=True)
    assert list(logged) == [str(parked.pk)]


@pytest.mark.django_db
def test_an_order_stuck_past_its_deadline_is_found_and_flagged_and_a_settled_one_never_is(
    operator_client, shop, settings
):
    changelist = reverse("admin:orders_order_changelist")
    # given the order still deciding, within its deadline: nothing to look at
    assert not shown(operator_client.get(changelist, {"attention": "stuck"}))
    assert "past the deadline" not in operator_client.get(changelist).content.decode()

    # when it has been CREATED for longer than the saga's deadline (its sweep not running, say)
    long_ago = timezone.now() - timedelta(seconds=settings.SAGA_DEADLINE_SECONDS + 1)
    Order.objects.filter(pk__in=[shop.deciding.pk, shop.completed.pk]).update(created_at=long_ago)

    # then the filter finds it, and only it (the completed one is as old, and settled), and the list says why
    assert [order.pk for order in shown(operator_client.get(changelist, {"attention": "stuck"}))] == [shop.deciding.pk]
    assert "CREATED past the deadline" in operator_client.get(changelist).content.decode()


@pytest.mark.django_db
def test_an_operator_cancels_orders_for_their_customers_and_admin_keeps_it_in_history(operator_client, shop):
    # when the operator cancels the completed order, the failed one and the one still deciding
    changelist = reverse("admin:orders_order_changelist")
    ids = [shop.completed.pk, shop.failed.pk, shop.deciding.pk]
    response = operator_client.post(changelist, {"action": "cancel_orders", "_selected_action": ids}, follow=True)

    # then the completed one is CANCELED, the undecided one FAILED, the failed one refused with a reason
    assert response.status_code == 200
    statuses = dict(Order.objects.filter(pk__in=ids).values_list("pk", "status"))
    assert statuses == {shop.completed.pk: "CANCELED", shop.failed.pk: "FAILED", shop.deciding.pk: "FAILED"}
    assert Order.objects.get(pk=shop.deciding.pk).failure_reason == "canceled by operator operator"
    notes = [str(message) for message in get_messages(response.wsgi_request)]
    assert any(f"Order {shop.failed.pk} is FAILED and cannot be cancelled" in note for note in notes), notes
    logged = LogEntry.objects.filter(object_id__in=[str(pk) for pk in ids]).values_list("object_id", "change_message")
    assert sorted(logged) == sorted(
        [(str(shop.completed.pk), "Cancelled: now CANCELED."), (str(shop.deciding.pk), "Cancelled: now FAILED.")]
    )
