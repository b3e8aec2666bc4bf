from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.coupons.models import UserCouponStatus
from apps.coupons.selectors import coupons_of
from apps.coupons.services import coupon_issue
from common.api import acting_user_id
from common.openapi import (
    ACTING_USER_ERRORS,
    COUPON_ALREADY_ISSUED,
    COUPON_NOT_USABLE,
    COUPON_SOLD_OUT,
    PARSE_ERROR,
    UNSUPPORTED_MEDIA_TYPE,
    USER_ID,
    VALIDATION_ERROR,
    errors,
)
from idempotency.decorators import idempotent


class UserCouponOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The user coupon's id (what an order's `user_coupon_id` names).")
    coupon_id = serializers.IntegerField()
    name = serializers.CharField(source="coupon.name")
    discount_rate = serializers.DecimalField(
        source="coupon.discount_rate",
        max_digits=5,
        decimal_places=4,
        min_value=0,
        max_value=1,
        coerce_to_string=False,
        help_text="The share of the price taken off, 0 to 1.",
    )
    status = serializers.ChoiceField(choices=UserCouponStatus.choices)
    expires_at = serializers.DateTimeField(source="coupon.expires_at")

    class Meta:
        ref_name = "UserCoupon"


class CouponQueuedOutputSerializer(serializers.Serializer):
    coupon_id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["QUEUED"])

    class Meta:
        ref_name = "CouponQueued"


class UserCouponListApi(APIView):
    @extend_schema(
        operation_id="coupons_list",
        tags=["coupons"],
        summary="A user's coupons",
        parameters=[USER_ID],
        responses={200: UserCouponOutputSerializer(many=True), **errors(*ACTING_USER_ERRORS)},
    )
    def get(self, request, user_id: int):
        user_id = acting_user_id(request, user_id)
        return Response(UserCouponOutputSerializer(coupons_of(user_id=user_id), many=True).data)


class CouponIssueApi(APIView):
    throttle_scope = "coupon_issue"

    class InputSerializer(serializers.Serializer):
        coupon_id = serializers.IntegerField(min_value=1)

        class Meta:
            ref_name = "CouponIssue"

    @extend_schema(
        operation_id="coupons_issue",
        tags=["coupons"],
        summary="Issue a coupon to a user, first come first served",
        parameters=[USER_ID],
        request=InputSerializer,
        responses={
            201: OpenApiResponse(UserCouponOutputSerializer, description="Issued at once: the user coupon."),
            202: OpenApiResponse(
                CouponQueuedOutputSerializer,
                description="Queued: the coupon appears in the user's coupons within 5 s (not used by this "
                "implementation today, which issues at once).",
            ),
            **errors(
                VALIDATION_ERROR,
                PARSE_ERROR,
                COUPON_SOLD_OUT,
                COUPON_ALREADY_ISSUED,
                COUPON_NOT_USABLE,
                UNSUPPORTED_MEDIA_TYPE,
                *ACTING_USER_ERRORS,
            ),
        },
    )
    @idempotent
    def post(self, request, user_id: int):
        user_id = acting_user_id(request, user_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user_coupon = coupon_issue(coupon_id=data.validated_data["coupon_id"], user_id=user_id)
        return Response(UserCouponOutputSerializer(user_coupon).data, status=status.HTTP_201_CREATED)
