"""Every pool of the Procfile's fleet keeps taking tasks from the broker under a burst (prefork -c 2, threads
-c 32, a prefetch of one): a worker that stalled would leave orders undecided here. Runs on either broker;
`make test` runs it on both."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from apps.orders.consistency import violations
from apps.orders.models import Order
from common.queues import GROUPS
from tests.processes import stop
from tests.saga_worker import purge_queues, queued_messages, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
ORDERS = 60  # each sets off four to five tasks: a few hundred in all


def start_worker_process(
    pool: str, concurrency: int, *, env: dict[str, str] | None = None, output: int = subprocess.DEVNULL
) -> subprocess.Popen:
    """`celery -A config worker` as the Procfile starts it, on this test's database, Redis and broker."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        **(env or {}),
    }
    command = [
        str(Path(sys.executable).parent / "celery"), "-A", "config", "-q", "worker", "-P", pool, "-c", str(concurrency),
        "--queue-groups", ",".join(GROUPS), "--without-gossip", "--without-mingle", "-l", "warning",
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)


@pytest.mark.parametrize(("pool", "concurrency"), [("prefork", 2), ("threads", 32)])
def test_a_burst_of_orders_all_complete_on_each_pool_of_the_fleet(
    pool, concurrency, make_user, make_product, place_order, settings
):
    # given a burst of orders whose tasks wait in the broker
    purge_queues()
    product = make_product(price=100, stock=ORDERS)
    orders = [place_order(make_user(balance=10_000), [(product.pk, 1)]) for _ in range(ORDERS)]
    assert queued_messages() >= ORDERS * 2

    # when one worker of the pool takes them all
    worker = start_worker_process(pool, concurrency)
    started = time.monotonic()
    try:
        # then every order completes: the worker never stalls with tasks waiting
        wait_for(
            lambda: Order.objects.filter(pk__in=orders, status="COMPLETED").count() == ORDERS,
            timeout=120,
            message=f"{ORDERS} orders completed on the {pool} pool",
        )
    finally:
        stop(worker)
    print(f"{pool} -c {concurrency}: {ORDERS} orders in {time.monotonic() - started:.1f} s")
    assert violations() == []
