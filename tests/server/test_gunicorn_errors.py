"""gunicorn's error page as the API's JSON (config/gunicorn_errors.py), written to a socket as gunicorn does."""

import json
import socket

import gunicorn.util
import pytest

from config import gunicorn_errors


def written(status: int, reason: str, detail: str) -> tuple[str, dict, dict]:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        gunicorn_errors.write_json_error(ours, status, reason, detail)
        ours.shutdown(socket.SHUT_WR)
        raw = theirs.recv(65536).decode()
    head, _, body = raw.partition("\r\n\r\n")
    status_line, *header_lines = head.split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return status_line, headers, json.loads(body)


@pytest.mark.parametrize(
    ("status", "reason", "code"),
    [
        (400, "Bad Request", "bad_request"),
        (414, "URI Too Long", "uri_too_long"),
        (431, "Request Header Fields Too Large", "request_header_fields_too_large"),
        (417, "Expectation Failed", "expectation_failed"),
        (501, "Not Implemented", "not_implemented"),
    ],
)
def test_a_refusal_is_the_api_error_shape_with_gunicorns_reason(status, reason, code):
    status_line, headers, body = written(status, reason, "what gunicorn found")

    assert status_line == f"HTTP/1.1 {status} {reason}"
    assert headers["Content-Type"] == "application/json"
    assert headers["Connection"] == "close"
    assert int(headers["Content-Length"]) == len(json.dumps(body).encode())
    assert body["code"] == code and body["message"]
    assert body["details"] == {"reason": "what gunicorn found"}


def test_gunicorns_own_500_has_no_details():
    _, _, body = written(500, "Internal Server Error", "")

    assert body == {"code": "internal_error", "message": "Something went wrong on our side."}


def test_install_replaces_the_function_gunicorns_workers_call(monkeypatch):
    monkeypatch.setattr(gunicorn.util, "write_error", gunicorn.util.write_error)

    gunicorn_errors.install()

    assert gunicorn.util.write_error is gunicorn_errors.write_json_error
