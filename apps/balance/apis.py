from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.balance.selectors import balance_of
from apps.balance.services import balance_charge
from common.api import acting_user_id
from idempotency.decorators import idempotent


class BalanceApi(APIView):
    def get(self, request, user_id: int):
        user_id = acting_user_id(request, user_id)
        return Response({"user_id": user_id, "amount": balance_of(user_id=user_id)})


class BalanceChargeApi(APIView):
    throttle_scope = "balance_charge"

    class InputSerializer(serializers.Serializer):
        amount = serializers.IntegerField(min_value=1)  # the limit is the service's to check

    @idempotent
    def post(self, request, user_id: int):
        user_id = acting_user_id(request, user_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        amount = balance_charge(user_id=user_id, amount=data.validated_data["amount"])
        return Response({"user_id": user_id, "amount": amount})
