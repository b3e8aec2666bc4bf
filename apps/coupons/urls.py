from django.urls import path

from apps.coupons.apis import CouponIssueApi, UserCouponListApi

urlpatterns = [
    path("users/<int:user_id>/coupons", UserCouponListApi.as_view(), name="user-coupons"),
    path("users/<int:user_id>/coupons/issue", CouponIssueApi.as_view(), name="coupon-issue"),
]
