"""What gunicorn answers itself is JSON in the error shape; ``/metrics`` may require a token.

A real gunicorn with ``ticketing/runtime/gunicorn.conf.py`` (two workers): a request
line over ``limit_request_line`` is 414 ``uri_too_long``, a header over
``limit_request_field_size`` or too many headers 431
``request_header_fields_too_large``, a request line that is not HTTP 400, all as
``{"error": {...}}`` JSON, never gunicorn's HTML page. With
``api.metrics_token_file`` (here through ``$TICKETING_METRICS_TOKEN_FILE``)
``/metrics`` wants ``Authorization: Bearer <token>``; without it it stays public.
Cursors written by one worker are accepted by the other (one secret).
"""

from __future__ import annotations

import socket

import pytest
import requests

from tests.harness.app import create_test_app, ticketing_config
from tests.harness.ticketing import prepare_database, start_ticketing
from ticketing.config import ConfigError

TOKEN = "metrics-scrape-token-0123456789"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gunicorn-limits")
    db_url = f"sqlite:///{tmp / 'ticketing.db'}"
    keys = prepare_database(db_url)
    token_file = tmp / "metrics.token"
    token_file.write_text(TOKEN + "\n")
    instance = start_ticketing(
        tmp,
        env={
            "TICKETING_DATABASE_URL": db_url,
            "TICKETING_METRICS_TOKEN_FILE": str(token_file),
            "TICKETING_SECRET_KEY": "gunicorn-test-secret-" + "x" * 24,
            "TICKETING_CONFIG": "",
        },
        workers=2,
    )
    yield instance, keys
    instance.stop()


def _json_error(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    error = response.json()["error"]
    assert error["code"] == code and isinstance(error["message"], str), error
    assert isinstance(error["details"], dict)
    assert "<html" not in response.text


def _raw(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def test_gunicorn_refusals_are_json_in_the_error_shape(served):
    instance, keys = served
    headers = {"X-API-Key": keys.partners[0]}
    cases = [
        (
            "request line too long",
            {"url": f"{instance.url}/api/v1/tickets?q={'a' * 5000}"},
            414,
            "uri_too_long",
        ),
        (
            "header too long",
            {"url": f"{instance.url}/healthz", "headers": {"X-Long": "a" * 9000}},
            431,
            "request_header_fields_too_large",
        ),
        (
            "too many headers",
            {"url": f"{instance.url}/healthz", "headers": {f"X-H{n}": "1" for n in range(120)}},
            431,
            "request_header_fields_too_large",
        ),
    ]
    for name, kwargs, status, code in cases:
        response = requests.get(**{"headers": headers, **kwargs}, timeout=10)
        try:
            _json_error(response, status, code)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None

    status, head, body = _raw(instance.port, b"THIS IS NOT HTTP\r\n\r\n")
    assert status == 400 and head["Content-Type"] == "application/json", (status, head, body)
    assert b'"code":"bad_request"' in body and b"<html" not in body

    # Below the limits, the app answers (and in the same shape).
    response = requests.get(
        f"{instance.url}/api/v1/tickets?q={'a' * 3000}", headers=headers, timeout=10
    )
    _json_error(response, 422, "validation_error")


def test_metrics_needs_the_token_when_one_is_configured(served):
    instance, _ = served
    url = f"{instance.url}/metrics"
    for name, auth in [
        ("no header", None),
        ("wrong token", f"Bearer {TOKEN}x"),
        ("not bearer", f"Basic {TOKEN}"),
        ("empty", "Bearer "),
    ]:
        response = requests.get(url, headers={"Authorization": auth} if auth else {}, timeout=10)
        assert response.status_code == 401, (name, response.status_code)
        assert response.json()["error"]["code"] == "unauthorized", name
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), name
        assert "flask_http_request" not in response.text
    response = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200
    assert "flask_http_request_duration_seconds" in response.text


def test_cursors_of_one_worker_are_accepted_by_the_others(served):
    instance, keys = served
    headers = {"X-API-Key": keys.partners[0]}
    for n in range(3):
        body = {"title": f"Question {n}", "description": "About the invoice."}
        created = requests.post(
            f"{instance.url}/api/v1/tickets", json=body, headers=headers, timeout=10
        )
        assert created.status_code == 201, created.text
    first = requests.get(f"{instance.url}/api/v1/tickets?limit=1", headers=headers, timeout=10)
    cursor = first.json()["next_cursor"]
    assert cursor
    # Many requests over fresh connections: both workers answer some of them.
    for _ in range(12):
        page = requests.get(
            f"{instance.url}/api/v1/tickets",
            params={"limit": 1, "cursor": cursor},
            headers=headers,
            timeout=10,
        )
        assert page.status_code == 200, page.text


def test_metrics_is_public_without_a_token_file(client):
    response = client.get("/metrics")
    assert response.status_code == 200


def test_metrics_token_in_process_and_a_bad_token_file_stops_start_up(db_url, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    section = {"ratelimits": {"enabled": False}, "api": {"metrics_token_file": str(token_file)}}
    app = create_test_app(ticketing_config(db_url, tmp_path, ticketing=section), migrate=False)
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.get("/healthz").status_code == 200

    for content, problem in [(None, "cannot be read"), ("short", "16 characters")]:
        bad = tmp_path / f"bad-{problem.split()[0]}"
        if content is not None:
            bad.write_text(content)
        section = {"api": {"metrics_token_file": str(bad)}}
        with pytest.raises(ConfigError) as refused:
            create_test_app(ticketing_config(db_url, tmp_path, ticketing=section), migrate=False)
        assert any(
            line.startswith("api.metrics_token_file:") and problem in line
            for line in refused.value.problems
        ), refused.value.problems
