"""The load: many users order through the public API, from a pool of threads, while faults are injected.

Orders are planned up front from the seed: who orders what, and whether with the user's coupon. About a
third use the coupon, so some find it already used (400 coupon_not_usable, counted as refused, or a failed
coupon step when two race); some take a scarce product (doomed by stock) or belong to a poor user (doomed
by balance); the gateway declines some payments (PAYMENT_DECLINE_RATE). Some are cancelled by their
customer a moment after they were placed (before the decision, during the payment or once completed),
and the customer's app sends that cancel twice with one Idempotency-Key, as a client that retries does.
"""

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

from chaos.data import Shop, ShopUser

THREADS = 12
REQUEST_TIMEOUT = 30
COUPON_SHARE = 1 / 3
SCARCE_SHARE = 0.12
CANCEL_SHARE = 0.15
# Seconds after the order was placed: half the cancels come at once (the saga is still deciding or paying:
# orders settle in tens of milliseconds here), half later (the order is completed, or failed).
CANCEL_SOON, CANCEL_WITHIN = 0.05, 3.0
CANCEL_THREADS = 4


@dataclass(frozen=True)
class OrderPlan:
    user: ShopUser
    items: list[dict[str, int]]
    with_coupon: bool
    cancel_after: float | None = None  # seconds after the 201; None: never cancelled


@dataclass
class LoadResult:
    """What the API answered; `progress` counts answered requests, for the fault injector."""

    total: int
    answers: Counter = field(default_factory=Counter)  # HTTP status (or "connection error") → count
    refusals: Counter = field(default_factory=Counter)  # the code of each 400
    errors: list[str] = field(default_factory=list)  # samples of answers other than 201 and 400
    cancels: Counter = field(default_factory=Counter)  # HTTP status of each first cancel → count
    replays_wrong: list[str] = field(default_factory=list)  # repeated cancels that did not replay the first
    progress: int = 0
    started_at: float = 0.0
    ended_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, answer: int | str, body: dict | None, note: str = "") -> None:
        with self._lock:
            self.answers[answer] += 1
            self.progress += 1
            if answer == 400:
                self.refusals[(body or {}).get("code", "?")] += 1
            elif answer != 201 and len(self.errors) < 20:
                self.errors.append(f"{answer}: {note}"[:500])

    def record_cancel(self, answer: int | str, note: str = "") -> None:
        with self._lock:
            self.cancels[answer] += 1
            if not isinstance(answer, int) or answer >= 500:
                self.errors.append(f"cancel {answer}: {note}"[:500])

    @property
    def server_errors(self) -> int:
        """5xx answers and failed connections: the API is never killed, so neither should happen."""
        answers = self.answers + self.cancels
        return sum(n for answer, n in answers.items() if not isinstance(answer, int) or answer >= 500)


def plan_orders(shop: Shop, *, count: int, rng: random.Random) -> list[OrderPlan]:
    plans = []
    for _ in range(count):
        lines = dict.fromkeys(rng.sample(shop.plentiful, k=rng.randint(1, 3)), 0)
        if rng.random() < SCARCE_SHARE:
            lines[rng.choice(shop.scarce)] = 0
        items = [{"product_id": product_id, "quantity": rng.randint(1, 3)} for product_id in lines]
        user, with_coupon = rng.choice(shop.users), rng.random() < COUPON_SHARE
        cancel_after = None
        if rng.random() < CANCEL_SHARE:
            soon = rng.random() < 0.5
            cancel_after = rng.uniform(0, CANCEL_SOON) if soon else rng.uniform(CANCEL_SOON, CANCEL_WITHIN)
        plans.append(OrderPlan(user=user, items=items, with_coupon=with_coupon, cancel_after=cancel_after))
    return plans


def _session(token: str | None = None) -> requests.Session:
    session = requests.Session()
    if token:
        session.headers["Authorization"] = f"Token {token}"
    return session


def issue_coupons(shop: Shop, *, api_url: str) -> dict[int, int]:
    """Each user issues the shop's coupon through the API; returns user id → user coupon id."""
    issued = {}
    with _session() as session:
        for user in shop.users:
            headers = {"Authorization": f"Token {user.token}"}
            url = f"{api_url}/api/v1/users/{user.id}/coupons"
            answer = session.post(f"{url}/issue", json={"coupon_id": shop.coupon_id}, headers=headers, timeout=10)
            if answer.status_code == 201:
                issued[user.id] = answer.json()["id"]
                continue
            if answer.status_code != 202:
                raise RuntimeError(f"issuing a coupon to user {user.id}: {answer.status_code} {answer.text}")
            give_up = time.monotonic() + 10  # queued: it appears within 5 s (docs/api.md)
            while user.id not in issued and time.monotonic() < give_up:
                held = session.get(url, headers=headers, timeout=10).json()
                issued.update({user.id: held[0]["id"]} if held else {})
                time.sleep(0.2)
            if user.id not in issued:
                raise RuntimeError(f"the queued coupon of user {user.id} never arrived")
    return issued


def cancel_twice(session: requests.Session, *, api_url: str, token: str, order_id: int, result: LoadResult) -> None:
    """The customer cancels, and the app sends the same cancel again with its Idempotency-Key: the second
    answer must be the first one replayed."""
    url = f"{api_url}/api/v1/orders/{order_id}/cancel"
    headers = {"Authorization": f"Token {token}", "Idempotency-Key": f"chaos-cancel-{order_id}"}
    try:
        first = session.post(url, headers=headers, timeout=REQUEST_TIMEOUT)
        again = session.post(url, headers=headers, timeout=REQUEST_TIMEOUT)
    except requests.RequestException as error:
        result.record_cancel("connection error", repr(error))
        return
    result.record_cancel(first.status_code, first.text)
    replayed = again.headers.get("Idempotent-Replayed") == "true"
    if first.status_code < 500 and (again.status_code, again.content, replayed) != (
        first.status_code,
        first.content,
        True,
    ):
        with result._lock:
            result.replays_wrong.append(f"order {order_id}: {first.status_code} then {again.status_code}")


def place_orders(
    plans: list[OrderPlan], coupons: dict[int, int], result: LoadResult, *, rate: float, api_url: str
) -> None:
    """POST every planned order from THREADS threads, each with its own session, at most `rate` orders
    a second overall (the n-th order leaves no sooner than n / rate seconds after the start); the planned
    cancels go from a pool of their own, so that they never hold back the orders."""
    local = threading.local()
    cancels = ThreadPoolExecutor(max_workers=CANCEL_THREADS, thread_name_prefix="cancel")

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = _session()
        return local.session

    def cancel_later(plan: OrderPlan, order_id: int, placed_at: float) -> None:
        time.sleep(max(0.0, placed_at + plan.cancel_after - time.monotonic()))
        cancel_twice(session(), api_url=api_url, token=plan.user.token, order_id=order_id, result=result)

    def place(numbered: tuple[int, OrderPlan]) -> None:
        number, plan = numbered
        time.sleep(max(0.0, result.started_at + number / rate - time.monotonic()))
        body = {"items": plan.items, "user_coupon_id": coupons.get(plan.user.id) if plan.with_coupon else None}
        headers = {"Authorization": f"Token {plan.user.token}"}
        try:
            answer = session().post(f"{api_url}/api/v1/orders", json=body, headers=headers, timeout=REQUEST_TIMEOUT)
        except requests.RequestException as error:
            result.record("connection error", None, repr(error))
            return
        try:
            payload = answer.json()
        except ValueError:
            payload = None
        result.record(answer.status_code, payload, answer.text)
        if answer.status_code == 201 and plan.cancel_after is not None:
            cancels.submit(cancel_later, plan, payload["id"], time.monotonic())

    result.started_at = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="order")
    try:
        list(pool.map(place, enumerate(plans)))
    finally:  # on Ctrl-C, the orders (and cancels) not yet sent are dropped
        pool.shutdown(wait=True, cancel_futures=True)
        cancels.shutdown(wait=True, cancel_futures=True)
    result.ended_at = time.monotonic()
