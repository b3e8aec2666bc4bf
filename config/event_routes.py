"""The whole saga in one table: which event goes to which listeners.

Each listener is a Celery task, dispatched with the event's envelope when the publishing transaction
commits (eventbus.bus). Each task runs on its app's own queue (settings.CELERY_TASK_ROUTES), except the
inline ones: those run in the publishing worker right after its commit, and go to their queue only if
that first run fails. Every listener, inline or not, has its outbox row.

    OrderCreated ──► each participant's step (balance, coupon, stock) ──► their results ──► orders decides once:
        all SUCCESS ──► OrderPaymentWaited ──► pay ──► PaymentPaid ──► complete ──► OrderCompleted
        any FAILED  ──► OrderFailed ──► every participant undoes what its own records say it did
    PaymentFailed ──► OrderFailed
    completion failing (the order failed meanwhile) ──► OrderCompleteFailed ──► cancel payment
        ──► PaymentCanceled ──► OrderFailed (once: the order is already FAILED)
    a customer cancels before completion ──► OrderFailed (as above)
    a customer cancels a completed order ──► OrderCanceled ──► cancel payment, every participant gives
        back what its own records say the order took, the rank loses its units, the platform is told
"""

from apps.balance import tasks as balance
from apps.balance.events import BalanceRefunded
from apps.coupons import tasks as coupons
from apps.coupons.events import CouponRestored
from apps.dataplatform import tasks as dataplatform
from apps.orders import tasks as orders
from apps.orders.events import (
    OrderCanceled,
    OrderCompleted,
    OrderCompleteFailed,
    OrderCreated,
    OrderFailed,
    OrderPaymentWaited,
)
from apps.payments import tasks as payments
from apps.payments.events import PaymentCanceled, PaymentFailed, PaymentPaid
from apps.products import tasks as products
from apps.products.events import StockRestored
from common.participants import step_results, takes_part
from eventbus.bus import inline, only_if

ROUTES = {
    # 1. The order is created: the participants' steps run in parallel. A step that does not concern the
    #    order (no coupon: nothing to use) runs no task and counts as SUCCESS (common.participants).
    OrderCreated: (
        balance.use_balance_task,
        only_if(takes_part("coupon"), coupons.use_coupon_task),
        products.deduct_stock_task,
    ),
    # 2. Each step reports (the result events its participant declares); the orders app records it and
    #    decides once no step is pending. Recording is a few milliseconds of Redis and one conditional
    #    UPDATE: it runs inline, in the step's own worker.
    **{result: (inline(orders.record_step_result_task),) for result in step_results()},
    # 3. All steps succeeded: pay (the gateway is remote and slow: on the payments queue); paid: complete.
    OrderPaymentWaited: (payments.pay_task,),
    PaymentPaid: (inline(orders.complete_order_task),),
    PaymentFailed: (orders.fail_order_task,),
    # 4. Completed: the rank grows (one Redis script, inline) and the order goes to the data platform
    #    (remote, retried with backoff: on its queue).
    OrderCompleted: (inline(products.add_to_rank_task), dataplatform.deliver_order_task),
    # 5. Paid but not completable: cancel the payment, then fail the order.
    OrderCompleteFailed: (payments.cancel_payment_task,),
    PaymentCanceled: (orders.fail_order_task,),
    # 6. Failed, however it failed: each participant undoes its own step, if it took effect.
    OrderFailed: (
        balance.refund_balance_task,
        only_if(takes_part("coupon"), coupons.restore_coupon_task),
        products.restore_stock_task,
    ),
    # 7. A completed order cancelled by its customer: the payment is cancelled at the gateway (its
    #    PaymentCanceled then finds the order CANCELED and fails nothing), each participant gives back what
    #    its own records say the order took (the same once-only undo as on OrderFailed), the day's rank
    #    loses the units, the data platform is told. The API publishes it: no listener runs inline.
    OrderCanceled: (
        payments.cancel_payment_task,
        balance.refund_balance_task,
        only_if(takes_part("coupon"), coupons.restore_coupon_task),
        products.restore_stock_task,
        products.remove_from_rank_task,
        dataplatform.deliver_order_task,
    ),
    # Compensations are reported for operators and audit; no listener needs them yet.
    BalanceRefunded: (),
    CouponRestored: (),
    StockRestored: (),
}
