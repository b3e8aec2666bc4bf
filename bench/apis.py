from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.orders.apis import OrderListCreateApi
from apps.orders.selectors import order_view
from apps.orders.services import OrderLineInput
from bench.monolith import monolith_order_place


class MonolithOrderCreateApi(APIView):
    """POST /bench/monolith/orders: the body and answer of POST /api/v1/orders, done in one transaction;
    the order is COMPLETED (or refused with a 400 and nothing written) when the answer comes. Like the
    saga's API, it answers from what it wrote, without reading the order back."""

    InputSerializer = OrderListCreateApi.InputSerializer

    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        order = monolith_order_place(
            user_id=request.user.pk,
            lines=[OrderLineInput(**line) for line in data.validated_data["items"]],
            user_coupon_id=data.validated_data["user_coupon_id"],
        )
        payment = {"id": order.payment.pk, "status": order.payment.status, "amount": order.payment.amount}
        answer = order_view(order, items=order.created_items, steps=order.steps, payment=payment)
        return Response(answer, status=status.HTTP_201_CREATED)
