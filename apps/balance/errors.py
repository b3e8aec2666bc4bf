from common.errors import ApplicationError


class BalanceLimitExceeded(ApplicationError):
    code = "balance_limit_exceeded"
