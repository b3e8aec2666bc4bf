"""What the API refuses, through a real gunicorn, is JSON in the API's error shape: gunicorn's own refusals
(a request line or headers it will not parse), a body over the limit, a method or path the API lacks."""

import http.client
import socket

import pytest
import requests

from apps.accounts.services import api_key_issue
from tests.server.conftest import running_gunicorn

FIVE_MB = 5 * 1000 * 1000


@pytest.fixture(scope="module")
def server(test_database_name):
    with running_gunicorn(database_name=test_database_name) as running:
        yield running


@pytest.fixture
def token(transactional_db, make_user) -> str:
    return api_key_issue(user=make_user(balance=1_000_000))


def assert_json_error(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text[:500]
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    body = response.json()
    assert body["code"] == code, body
    assert body["message"], body
    return body


def raw_exchange(url: str, request: bytes, *, send_chunk: int = 64 * 1024) -> http.client.HTTPResponse:
    """Send `request` as is, all of it (a send error fails the test), then read the answer."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    for offset in range(0, len(request), send_chunk):
        sock.sendall(request[offset : offset + send_chunk])
    answer = http.client.HTTPResponse(sock)
    answer.begin()
    answer.body = answer.read()
    sock.close()
    return answer


def test_a_request_line_over_gunicorns_limit_is_414_json(server):
    response = requests.get(f"{server.url}/api/v1/products", params={"q": "x" * 5_000}, timeout=10)

    body = assert_json_error(response, 414, "uri_too_long")
    assert "Request Line is too large" in body["details"]["reason"]


@pytest.mark.parametrize(
    "headers",
    [{"X-Padding": "x" * 9_000}, {f"X-Header-{number}": "x" for number in range(120)}],
    ids=["one header too large", "too many headers"],
)
def test_headers_over_gunicorns_limits_are_431_json(server, headers):
    response = requests.get(f"{server.url}/api/v1/products", headers=headers, timeout=10)

    assert_json_error(response, 431, "request_header_fields_too_large")


def test_a_request_gunicorn_cannot_parse_is_400_json(server):
    # a header name with a space in it, which no HTTP client library would send
    answer = raw_exchange(server.url, b"GET /api/v1/products HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Name: x\r\n\r\n")

    assert answer.status == 400
    assert answer.getheader("Content-Type") == "application/json"
    assert b'"code": "bad_request"' in answer.body


def test_a_5_mb_body_is_answered_413_json_and_the_connection_stays_usable(server, token):
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"

    # when a client posts 5 MB (no transport error may happen: requests raises on a reset)
    response = session.post(
        f"{server.url}/api/v1/orders", data=b"x" * FIVE_MB, headers={"Content-Type": "application/json"}, timeout=30
    )

    # then it gets the API's 413, and the same connection serves the next request
    body = assert_json_error(response, 413, "request_too_large")
    assert body["details"] == {"max_bytes": 1024 * 1024}
    assert response.headers.get("Connection", "keep-alive").lower() == "keep-alive", response.headers
    assert session.get(f"{server.url}/api/v1/products", timeout=10).status_code == 200


def test_a_client_that_sends_all_5_mb_before_reading_gets_the_413(server):
    # a plain client that writes its whole body before it reads: a server that closed early would break
    # its pipe (EPIPE) or reset it halfway
    head = (
        "POST /api/v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {FIVE_MB}\r\n\r\n"
    ).encode()

    answer = raw_exchange(server.url, head + b"x" * FIVE_MB)

    assert answer.status == 413
    assert b'"code": "request_too_large"' in answer.body


def test_a_body_just_over_the_limit_is_413_and_one_under_it_reaches_the_api(server, token):
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    over = requests.post(f"{server.url}/api/v1/orders", data=b" " * (1024 * 1024 + 1), headers=headers, timeout=10)
    under = requests.post(f"{server.url}/api/v1/orders", data=b"{}" + b" " * 1_000_000, headers=headers, timeout=10)

    assert_json_error(over, 413, "request_too_large")
    assert_json_error(under, 400, "validation_error")


def test_a_method_the_path_does_not_take_is_405_json(server, token):
    response = requests.delete(f"{server.url}/api/v1/products", headers={"Authorization": f"Token {token}"}, timeout=10)

    assert_json_error(response, 405, "method_not_allowed")


def test_an_unknown_path_is_404_json(server):
    response = requests.get(f"{server.url}/api/v1/no-such-thing", timeout=10)

    assert_json_error(response, 404, "not_found")
