from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.orders.models import OrderStatus
from apps.orders.process import FAILED, PENDING, SUCCESS
from apps.orders.selectors import new_order_view, order_views, order_visible_to, orders_of
from apps.orders.services import OrderLineInput, order_cancel, order_create
from apps.orders.services.cancel import CUSTOMER
from apps.payments.models import PaymentStatus
from common.openapi import (
    COUPON_NOT_USABLE,
    NOT_FOUND,
    ORDER_NOT_CANCELABLE,
    PARSE_ERROR,
    PERMISSION_DENIED,
    PRODUCT_NOT_ORDERABLE,
    UNSUPPORTED_MEDIA_TYPE,
    VALIDATION_ERROR,
    errors,
    id_parameter,
)
from common.participants import step_names
from eventbus.selectors import order_history
from idempotency.decorators import idempotent


class OrderPagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


# What apps.orders.selectors.order_view makes, field for field: the views answer with that dict.
class OrderOutputSerializer(serializers.Serializer):
    """An order: its lines and prices, the saga's steps, its payment."""

    class ItemSerializer(serializers.Serializer):
        product_id = serializers.IntegerField()
        quantity = serializers.IntegerField(min_value=1, max_value=settings.MAX_LINE_QUANTITY)
        unit_price = serializers.IntegerField(min_value=1)

        class Meta:
            ref_name = "OrderItem"

    class StepsSerializer(serializers.Serializer):
        """One field per installed participant (common.participants)."""

        def get_fields(self) -> dict[str, serializers.Field]:
            return {step: serializers.ChoiceField(choices=[PENDING, SUCCESS, FAILED]) for step in step_names()}

        class Meta:
            ref_name = "OrderSteps"

    class PaymentSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        status = serializers.ChoiceField(choices=PaymentStatus.choices)
        amount = serializers.IntegerField(min_value=1)

        class Meta:
            ref_name = "OrderPayment"

    id = serializers.IntegerField()
    user_id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=OrderStatus.choices)
    failure_reason = serializers.CharField(
        allow_null=True, help_text="Why the order FAILED; starts with `canceled` when it was cancelled."
    )
    items = ItemSerializer(many=True, allow_empty=False, max_length=settings.MAX_ORDER_LINES)
    user_coupon_id = serializers.IntegerField(allow_null=True)
    gross_price = serializers.IntegerField(min_value=1)
    discount_price = serializers.IntegerField(min_value=0)
    total_price = serializers.IntegerField(min_value=1, help_text="gross_price - discount_price, in won.")
    steps = StepsSerializer(
        help_text="One key per saga participant: the process hash while the saga runs, the stored outcome after."
    )
    payment = PaymentSerializer(allow_null=True, help_text="null until the order is paid for.")
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
    canceled_at = serializers.DateTimeField(allow_null=True, help_text="When a COMPLETED order was CANCELED.")

    class Meta:
        ref_name = "Order"


class OrderPageSerializer(serializers.Serializer):
    count = serializers.IntegerField(min_value=0)
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = OrderOutputSerializer(many=True, max_length=OrderPagination.max_page_size)

    class Meta:
        ref_name = "OrderPage"


ORDER_ID = id_parameter("order_id", "The order: one of the caller's (any order, for staff).")


class OrderListCreateApi(APIView):
    throttle_scope = {"POST": "order_create"}

    class InputSerializer(serializers.Serializer):
        class LineSerializer(serializers.Serializer):
            product_id = serializers.IntegerField(min_value=1)
            quantity = serializers.IntegerField(min_value=1, max_value=settings.MAX_LINE_QUANTITY)

            class Meta:
                ref_name = "OrderLine"

        items = LineSerializer(
            many=True,
            allow_empty=False,
            max_length=settings.MAX_ORDER_LINES,
            help_text="Lines of the same product are merged; a product's units in total may not exceed "
            f"{settings.MAX_LINE_QUANTITY:,}.",
        )
        user_coupon_id = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)

        class Meta:
            ref_name = "OrderCreate"

    @extend_schema(
        operation_id="orders_create",
        tags=["orders"],
        summary="Place an order",
        description=(
            "Prices the items, applies the coupon and saves the order CREATED for the caller; balance, coupon "
            "and stock are then taken by the saga, which decides the order (see `steps` and `status`)."
        ),
        request=InputSerializer,
        responses={
            201: OrderOutputSerializer,
            **errors(VALIDATION_ERROR, PARSE_ERROR, PRODUCT_NOT_ORDERABLE, COUPON_NOT_USABLE, UNSUPPORTED_MEDIA_TYPE),
        },
    )
    @idempotent
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        order = order_create(
            user_id=request.user.pk,
            lines=[OrderLineInput(**line) for line in data.validated_data["items"]],
            user_coupon_id=data.validated_data["user_coupon_id"],
        )
        return Response(new_order_view(order), status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="orders_list",
        tags=["orders"],
        summary="The caller's orders, newest first",
        parameters=[
            OpenApiParameter(
                OrderPagination.page_query_param,
                {"type": "integer", "minimum": 1},
                OpenApiParameter.QUERY,
                description="The page, from 1; a page past the last is 404.",
            ),
            OpenApiParameter(
                OrderPagination.page_size_query_param,
                {"type": "integer", "minimum": 1},
                OpenApiParameter.QUERY,
                description=f"Orders per page, {OrderPagination.page_size} unless given; more than "
                f"{OrderPagination.max_page_size} is read as {OrderPagination.max_page_size}.",
            ),
        ],
        responses={200: OrderPageSerializer, **errors(NOT_FOUND)},
    )
    def get(self, request):
        paginator = OrderPagination()
        page = paginator.paginate_queryset(orders_of(request.user), request, view=self)
        return paginator.get_paginated_response(order_views(page))


class OrderDetailApi(APIView):
    @extend_schema(
        operation_id="orders_retrieve",
        tags=["orders"],
        summary="An order",
        description="Someone else's order is 404, as is an order that does not exist (staff see any order).",
        parameters=[ORDER_ID],
        responses={200: OrderOutputSerializer, **errors(NOT_FOUND)},
    )
    def get(self, request, order_id: int):
        return Response(order_views([order_visible_to(request.user, order_id)])[0])


class OrderCancelApi(APIView):
    """Cancel an order of the caller (any order, for staff): 202 with the order as it stands."""

    throttle_scope = "order_cancel"

    @extend_schema(
        operation_id="orders_cancel",
        tags=["orders"],
        summary="Cancel an order",
        description=(
            "A CREATED or PAYMENT_WAITING order ends FAILED (`failure_reason` starting with `canceled`) and is "
            "compensated; a COMPLETED one ends CANCELED: its payment is cancelled and everything it took is "
            "given back. Someone else's order is 404 (staff may cancel any)."
        ),
        parameters=[ORDER_ID],
        request=None,
        responses={
            202: OpenApiResponse(OrderOutputSerializer, description="The order as it stands when answered."),
            **errors(NOT_FOUND, ORDER_NOT_CANCELABLE),
        },
    )
    @idempotent
    def post(self, request, order_id: int):
        order = order_visible_to(request.user, order_id)
        by = CUSTOMER if order.user_id == request.user.pk else f"operator {request.user.get_username()}"
        order_cancel(order_id=order.pk, by=by)
        return Response(order_views([order_visible_to(request.user, order_id)])[0], status=status.HTTP_202_ACCEPTED)


class OrderHistoryEntrySerializer(serializers.Serializer):
    """One domain event of the order's saga, as the event history keeps it (docs/design.md §3, §7)."""

    at = serializers.DateTimeField(source="occurred_at")
    event_type = serializers.CharField()
    event_id = serializers.UUIDField()
    correlation_id = serializers.CharField(allow_null=True)
    causation_id = serializers.UUIDField(allow_null=True, help_text="The event whose listener published this one.")
    source = serializers.CharField(help_text="The app that published it.")
    data = serializers.JSONField()

    class Meta:
        ref_name = "OrderHistoryEntry"


class OrderHistoryApi(APIView):
    @extend_schema(
        operation_id="orders_history",
        tags=["orders"],
        summary="An order's event history (staff)",
        description=(
            "Every domain event of the order's saga, oldest first: its steps and their compensations, the "
            "decision, the payment, completion, cancel and recovery. Staff only; an order that does not exist "
            "is 404."
        ),
        parameters=[ORDER_ID],
        responses={200: OrderHistoryEntrySerializer(many=True), **errors(PERMISSION_DENIED, NOT_FOUND)},
    )
    def get(self, request, order_id: int):
        if not request.user.is_staff:
            raise exceptions.PermissionDenied("Only staff may read an order's history.")
        order = order_visible_to(request.user, order_id)
        return Response(OrderHistoryEntrySerializer(order_history(order_id=order.pk), many=True).data)
