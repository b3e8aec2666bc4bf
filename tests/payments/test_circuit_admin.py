"""The circuit breakers in admin: the payments and deliveries lists show their partner's breaker, and an
operator may close one by hand, which admin's history keeps; one who may only look cannot."""

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from common.circuit import CLOSED, DATA_PLATFORM, OPEN, PAYMENT_GATEWAY, CircuitBreaker

pytestmark = pytest.mark.django_db

PAYMENTS = "/admin/payments/payment/"
DELIVERIES = "/admin/dataplatform/delivery/"


class Down(Exception):
    pass


@pytest.fixture(autouse=True)
def quick_breakers(settings):
    settings.CIRCUIT_FAILURE_THRESHOLD = 2
    settings.CIRCUIT_RESET_SECONDS = 30


def open_breaker(breaker: CircuitBreaker) -> None:
    for _ in range(2):
        try:
            with breaker.calling(outage=Down):
                raise Down("HTTP 503: down for maintenance")
        except Exception:  # Down, then CircuitOpen as it opens
            pass
    assert breaker.snapshot().state == OPEN


@pytest.fixture
def operator_client(client):
    operator = get_user_model().objects.create_superuser(username="operator", email="", password=None)
    client.force_login(operator)
    return client


@pytest.fixture
def onlooker_client(client):
    """Staff who may view payments and deliveries, and change neither."""
    onlooker = get_user_model().objects.create_user(username="onlooker", is_staff=True)
    onlooker.user_permissions.add(*Permission.objects.filter(codename__in=("view_payment", "view_delivery")))
    client.force_login(onlooker)
    return client


def test_the_payments_list_shows_the_gateways_breaker_open_with_when_it_tries_again(operator_client):
    # given
    open_breaker(PAYMENT_GATEWAY)

    # when
    page = operator_client.get(PAYMENTS).content.decode()

    # then
    assert "Circuit breaker of the payment gateway: open" in page
    assert "after 2 consecutive failures; no call until" in page
    assert "Down: HTTP 503: down for maintenance" in page
    assert 'value="Close the breaker now"' in page
    assert "Circuit breaker of the data platform" not in page


def test_the_deliveries_list_shows_the_platforms_breaker_closed(operator_client):
    page = operator_client.get(DELIVERIES).content.decode()

    assert "Circuit breaker of the data platform: closed" in page
    assert "0 of 2 consecutive failures before it opens" in page
    assert "Close the breaker now" not in page  # nothing to close


def test_an_operator_closes_a_breaker_by_hand_and_admins_history_keeps_it(operator_client):
    # given
    open_breaker(DATA_PLATFORM)

    # when
    response = operator_client.post(f"{DELIVERIES}circuit-breaker/close/", follow=True)

    # then
    assert response.redirect_chain == [(DELIVERIES, 302)]
    assert DATA_PLATFORM.snapshot().state == CLOSED
    assert "The circuit breaker of the data platform is closed (it was open)." in response.content.decode()
    [entry] = LogEntry.objects.all()
    assert (entry.user.username, entry.action_flag, entry.content_type.model) == ("operator", CHANGE, "delivery")
    assert entry.object_repr == "circuit breaker data_platform"
    assert (
        entry.change_message
        == "Closed the circuit breaker of the data platform by hand (it was open, 2 consecutive failures)."
    )


def test_one_who_may_only_look_sees_the_breaker_but_cannot_close_it(onlooker_client):
    # given
    open_breaker(PAYMENT_GATEWAY)

    # when
    page = onlooker_client.get(PAYMENTS).content.decode()
    closing = onlooker_client.post(f"{PAYMENTS}circuit-breaker/close/")

    # then
    assert "Circuit breaker of the payment gateway: open" in page
    assert "Close the breaker now" not in page
    assert closing.status_code == 403
    assert PAYMENT_GATEWAY.snapshot().state == OPEN
    assert not LogEntry.objects.exists()


def test_closing_takes_a_post(operator_client):
    open_breaker(PAYMENT_GATEWAY)

    assert operator_client.get(f"{PAYMENTS}circuit-breaker/close/").status_code == 405
    assert PAYMENT_GATEWAY.snapshot().state == OPEN
