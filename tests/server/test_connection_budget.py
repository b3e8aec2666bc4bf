"""The connection budget (common/connection_budget.py): what each process may hold, read from a Procfile
and the environment, against what the server offers."""

import os
from types import SimpleNamespace

import pytest
from celery.concurrency.solo import TaskPool as SoloPool
from django.conf import settings

from common.connection_budget import (
    Budget,
    ConnectionBudgetExceeded,
    ServerLimits,
    api_claim,
    api_pool_from_environment,
    beat_claim,
    celery_worker_claim,
    celery_worker_claim_at_init,
    check_at_start,
    commands_claim,
    procfile_claims,
    read_server_limits,
)

SERVER = ServerLimits(max_connections=100, superuser_reserved=3)


def test_the_api_holds_workers_times_threads():
    assert api_claim(workers=3, threads=5).connections == 15


def test_a_prefork_worker_holds_its_concurrency_and_a_solo_worker_one():
    assert celery_worker_claim(name="steps", concurrency=4).connections == 4
    assert celery_worker_claim(name="steps", concurrency=4, pool="solo").connections == 1
    assert beat_claim().connections == 0


def test_the_budget_is_what_the_server_offers_less_its_reserves():
    budget = Budget(claims=(api_claim(workers=2, threads=4), commands_claim(2)), limits=SERVER, reserve=10)

    assert (budget.needed, budget.available, budget.fits) == (10, 87, True)
    assert "available 87 = max_connections 100 − superuser_reserved_connections 3 − " in budget.explain()


def test_postgresql_16_reserved_connections_count_against_it():
    budget = Budget(claims=(), limits=ServerLimits(100, 3, reserved=5), reserve=10)

    assert budget.available == 82
    assert "reserved_connections 5" in budget.explain()


def test_the_projects_procfile_is_read_with_the_environments_pool():
    procfile = (settings.BASE_DIR / "Procfile").read_text()

    claims, others = procfile_claims(procfile, environ={}, default_concurrency=8)
    scaled, _ = procfile_claims(
        procfile, environ={"WEB_CONCURRENCY": "3", "GUNICORN_THREADS": "6"}, default_concurrency=8
    )

    assert {claim.name: claim.connections for claim in claims} == {
        "web": 8,
        "steps": 2,
        "flow": 2,
        "remote": 32,
        "beat": 0,
    }
    assert others == []
    assert {claim.name: claim.connections for claim in scaled}["web"] == 18


@pytest.mark.parametrize(
    ("command", "connections"),
    [
        (".venv/bin/gunicorn config.wsgi -c config/gunicorn.conf.py -w 3 --threads 2", 6),
        ("gunicorn config.wsgi --workers=5", 20),
        ("celery -A config worker -Q a -c3", 3),
        ("celery -A config worker --concurrency=6", 6),
        ("celery -A config worker", 8),
        ("celery -A config worker --autoscale=10,2", 10),
        ("celery -A config worker -P solo -c 4", 1),
        ("celery -A config beat", 0),
    ],
)
def test_command_line_options_win_over_the_defaults(command, connections):
    claims, _ = procfile_claims(f"process: {command}", environ={}, default_concurrency=8)

    assert [claim.connections for claim in claims] == [connections]


def test_other_programs_are_not_counted_and_the_development_server_is_refused():
    _, others = procfile_claims("# a comment\n\nlogs: tail -f log.txt\n", environ={}, default_concurrency=1)

    assert others == ["logs"]
    with pytest.raises(ValueError, match="unbounded"):
        procfile_claims("web: python manage.py runserver", environ={}, default_concurrency=1)


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_a_pool_size_that_is_not_a_positive_number_is_refused(value):
    with pytest.raises(ValueError, match="WEB_CONCURRENCY"):
        api_pool_from_environment({"WEB_CONCURRENCY": value})


def test_a_celery_worker_is_read_at_init_from_its_options():
    def worker(**overrides):
        return SimpleNamespace(
            **{"hostname": "w@h", "concurrency": 3, "pool_cls": "prefork", "options": {}, **overrides}
        )

    assert celery_worker_claim_at_init(worker()).connections == 3
    assert celery_worker_claim_at_init(worker(options={"autoscale": "7,1"})).connections == 7
    assert celery_worker_claim_at_init(worker(concurrency="auto")).connections == os.cpu_count()
    assert celery_worker_claim_at_init(worker(pool_cls=SoloPool)).connections == 1


def test_a_start_that_does_not_fit_is_refused_with_the_numbers(settings):
    settings.DATABASE_RESERVED_CONNECTIONS = 10
    with pytest.raises(ConnectionBudgetExceeded) as refused:
        check_at_start(
            [api_claim(workers=30, threads=4)], what="The API", limits=ServerLimits(100, 3), log=SimpleNamespace()
        )

    message = str(refused.value)
    assert "The API would hold more PostgreSQL connections" in message
    assert "DOES NOT FIT: 120 > 87" in message


@pytest.mark.django_db
def test_the_servers_limits_are_read_and_the_default_fleet_fits():
    limits = read_server_limits()
    log = SimpleNamespace(info=lambda *args: None, warning=lambda *args: None)

    budget = check_at_start([api_claim(workers=2, threads=4)], what="The API", log=log)

    assert limits.max_connections > limits.superuser_reserved >= 0
    assert budget is not None and budget.fits
