from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.balance.selectors import balance_of
from apps.balance.services import balance_charge
from common.api import acting_user_id
from common.openapi import (
    ACTING_USER_ERRORS,
    BALANCE_LIMIT_EXCEEDED,
    PARSE_ERROR,
    UNSUPPORTED_MEDIA_TYPE,
    USER_ID,
    VALIDATION_ERROR,
    errors,
)
from idempotency.decorators import idempotent


class BalanceOutputSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    amount = serializers.IntegerField(min_value=0, help_text="Won; 0 for a user who never charged.")

    class Meta:
        ref_name = "Balance"


class BalanceApi(APIView):
    @extend_schema(
        operation_id="balance_retrieve",
        tags=["balance"],
        summary="A user's balance",
        parameters=[USER_ID],
        responses={200: BalanceOutputSerializer, **errors(*ACTING_USER_ERRORS)},
    )
    def get(self, request, user_id: int):
        user_id = acting_user_id(request, user_id)
        return Response({"user_id": user_id, "amount": balance_of(user_id=user_id)})


class BalanceChargeApi(APIView):
    throttle_scope = "balance_charge"

    class InputSerializer(serializers.Serializer):
        amount = serializers.IntegerField(
            min_value=1,  # the limit is the service's to check
            help_text=f"Won to add; the new balance may not exceed {settings.BALANCE_LIMIT:,}.",
        )

        class Meta:
            ref_name = "BalanceCharge"

    @extend_schema(
        operation_id="balance_charge",
        tags=["balance"],
        summary="Charge a user's balance",
        parameters=[USER_ID],
        request=InputSerializer,
        responses={
            200: BalanceOutputSerializer,
            **errors(
                VALIDATION_ERROR, PARSE_ERROR, BALANCE_LIMIT_EXCEEDED, UNSUPPORTED_MEDIA_TYPE, *ACTING_USER_ERRORS
            ),
        },
    )
    @idempotent
    def post(self, request, user_id: int):
        user_id = acting_user_id(request, user_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        amount = balance_charge(user_id=user_id, amount=data.validated_data["amount"])
        return Response({"user_id": user_id, "amount": amount})
