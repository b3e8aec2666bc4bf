"""Tests of the public HTTP API, exactly as docs/api.md describes it."""

ERROR_KEYS = {"code", "message", "details"}


def assert_error(response, status: int, code: str | None = None) -> dict:
    """The answer is the JSON error of docs/api.md with this status (and code, if given); returns its body."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert isinstance(body, dict), body
    assert {"code", "message"} <= set(body) <= ERROR_KEYS, body
    assert isinstance(body["code"], str) and body["code"], body
    assert isinstance(body["message"], str) and body["message"], body
    assert isinstance(body.get("details", {}), dict), body
    if code is not None:
        assert body["code"] == code, body
    return body
