from django.conf import settings
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.orders.selectors import new_order_view, order_views, order_visible_to, orders_of
from apps.orders.services import OrderLineInput, order_cancel, order_create
from apps.orders.services.cancel import CUSTOMER
from idempotency.decorators import idempotent


class OrderPagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


class OrderListCreateApi(APIView):
    throttle_scope = {"POST": "order_create"}

    class InputSerializer(serializers.Serializer):
        class LineSerializer(serializers.Serializer):
            product_id = serializers.IntegerField(min_value=1)
            quantity = serializers.IntegerField(min_value=1, max_value=settings.MAX_LINE_QUANTITY)

        items = LineSerializer(many=True, allow_empty=False, max_length=settings.MAX_ORDER_LINES)
        user_coupon_id = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)

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

    def get(self, request):
        paginator = OrderPagination()
        page = paginator.paginate_queryset(orders_of(request.user), request, view=self)
        return paginator.get_paginated_response(order_views(page))


class OrderDetailApi(APIView):
    def get(self, request, order_id: int):
        return Response(order_views([order_visible_to(request.user, order_id)])[0])


class OrderCancelApi(APIView):
    """Cancel an order of the caller (any order, for staff): 202 with the order as it stands."""

    throttle_scope = "order_cancel"

    @idempotent
    def post(self, request, order_id: int):
        order = order_visible_to(request.user, order_id)
        by = CUSTOMER if order.user_id == request.user.pk else f"operator {request.user.get_username()}"
        order_cancel(order_id=order.pk, by=by)
        return Response(order_views([order_visible_to(request.user, order_id)])[0], status=status.HTTP_202_ACCEPTED)
