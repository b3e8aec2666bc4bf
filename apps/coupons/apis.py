from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.coupons.selectors import coupons_of
from apps.coupons.services import coupon_issue
from common.api import acting_user_id
from idempotency.decorators import idempotent


class UserCouponOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    coupon_id = serializers.IntegerField()
    name = serializers.CharField(source="coupon.name")
    discount_rate = serializers.DecimalField(
        source="coupon.discount_rate", max_digits=5, decimal_places=4, coerce_to_string=False
    )
    status = serializers.CharField()
    expires_at = serializers.DateTimeField(source="coupon.expires_at")


class UserCouponListApi(APIView):
    def get(self, request, user_id: int):
        user_id = acting_user_id(request, user_id)
        return Response(UserCouponOutputSerializer(coupons_of(user_id=user_id), many=True).data)


class CouponIssueApi(APIView):
    throttle_scope = "coupon_issue"

    class InputSerializer(serializers.Serializer):
        coupon_id = serializers.IntegerField(min_value=1)

    @idempotent
    def post(self, request, user_id: int):
        user_id = acting_user_id(request, user_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user_coupon = coupon_issue(coupon_id=data.validated_data["coupon_id"], user_id=user_id)
        return Response(UserCouponOutputSerializer(user_coupon).data, status=status.HTTP_201_CREATED)
