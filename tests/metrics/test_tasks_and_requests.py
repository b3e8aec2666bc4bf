"""The process-side figures: Celery tasks by name and outcome, run by a real worker (common/metrics/tasks.py),
and HTTP requests by route template, never by a path with ids (common/metrics/http.py)."""

import pytest
from celery import shared_task
from rest_framework.test import APIClient

from tests.saga_worker import wait_for

pytestmark = pytest.mark.django_db
TASKS = "celery_tasks_total"


@shared_task(bind=True, max_retries=1)
def retried_once_task(self) -> None:
    if self.request.retries == 0:
        raise self.retry(countdown=0)


@shared_task
def broken_task() -> None:
    raise ValueError("a bug")


def test_a_worker_counts_each_run_of_a_task_by_outcome_and_times_it(saga_worker, scrape):
    before = scrape()

    retried_once_task.delay()
    broken_task.delay()

    def counted(name: str, outcome: str) -> float:
        return scrape().minus(before, TASKS, task=f"{__name__}.{name}", outcome=outcome)

    wait_for(lambda: counted("retried_once_task", "succeeded") and counted("broken_task", "failed"), timeout=20)
    after = scrape()
    assert counted("retried_once_task", "retried") == 1
    assert counted("retried_once_task", "succeeded") == 1
    assert counted("broken_task", "failed") == 1
    assert counted("broken_task", "succeeded") == 0
    duration = "celery_task_duration_seconds_count"
    assert after.minus(before, duration, task=f"{__name__}.retried_once_task") == 2  # each run
    assert after.minus(before, duration, task=f"{__name__}.broken_task") == 1


def test_requests_are_labelled_by_route_template_never_by_their_path(make_user, client_for, scrape):
    user = make_user()
    before = scrape()

    client_for(user).get("/api/v1/orders/987654")
    client_for(user).get("/api/v1/orders/987655")
    APIClient().get("/no/such/path/987656")
    APIClient().generic("BREW", "/healthz")

    after = scrape()
    route = "api/v1/orders/<int:order_id>"
    assert after.minus(before, "http_requests_total", method="GET", route=route, status="404") == 2
    assert after.minus(before, "http_request_duration_seconds_count", method="GET", route=route) == 2
    assert after.minus(before, "http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert after.minus(before, "http_requests_total", method="other", route="healthz", status="405") == 1
    labels = {value for _, sample_labels in after.samples for _, value in sample_labels}
    assert not any("98765" in value for value in labels)
