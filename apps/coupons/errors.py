from common.errors import ApplicationError


class CouponNotUsable(ApplicationError):
    code = "coupon_not_usable"


class CouponSoldOut(ApplicationError):
    code = "coupon_sold_out"


class CouponAlreadyIssued(ApplicationError):
    code = "coupon_already_issued"
