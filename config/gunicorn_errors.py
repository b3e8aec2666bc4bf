"""gunicorn's own refusals (a request line or headers it will not parse, its own 500s) in the API's JSON error
shape instead of its HTML page.

gunicorn has no setting for that page: `gunicorn.util.write_error` writes it, and its only caller is
`Worker.handle_error` (gunicorn/workers/base.py), which looks the function up on the module at every call.
config/gunicorn.conf.py replaces it in the master before the workers fork. tests/server checks the answers
through a real gunicorn, so a gunicorn upgrade that moves this is caught.
"""

import json

import gunicorn.util

CODES = {
    400: ("bad_request", "The request is malformed."),
    403: ("permission_denied", "The request is forbidden."),
    414: ("uri_too_long", "The request line is too long."),
    417: ("expectation_failed", "The Expect header cannot be met."),
    431: ("request_header_fields_too_large", "The request headers are too large."),
    501: ("not_implemented", "The request uses a feature the server does not implement."),
}
INTERNAL_ERROR = ("internal_error", "Something went wrong on our side.")


def json_error_body(status: int, detail: str) -> bytes:
    from common.api import error_body  # in a worker, where the application (and Django) is loaded

    code, message = CODES.get(status, INTERNAL_ERROR)
    return json.dumps(error_body(code, message, {"reason": detail} if detail else None)).encode()


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """`gunicorn.util.write_error`'s signature and framing (the connection closes), with a JSON body."""
    body = json_error_body(status_int, mesg)
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    gunicorn.util.write_nonblock(sock, head.encode("latin-1") + body)


def install() -> None:
    gunicorn.util.write_error = write_json_error
