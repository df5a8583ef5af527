"""Every kind of bad input gets a 4xx JSON error of the one shape, and writes nothing."""

from __future__ import annotations

import io
from pathlib import Path

from tests.harness.assertions import assert_error, row_counts

VALID = {"title": "Energy pool empty", "description": "No units left since 10:00."}


def _json_cases(tid: int):
    """(method, url, kwargs, status, code) for the JSON endpoints."""
    big = "x" * 70_000
    return [
        # ticket creation
        ("POST", "/api/v1/tickets", {"json": {**VALID, "colour": "red"}}, 422, "validation_error"),
        ("POST", "/api/v1/tickets", {"json": {**VALID, "title": 42}}, 422, "validation_error"),
        ("POST", "/api/v1/tickets", {"json": {**VALID, "title": None}}, 422, "validation_error"),
        (
            "POST",
            "/api/v1/tickets",
            {"json": {**VALID, "priority": "urgent"}},
            422,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/tickets",
            {"json": {**VALID, "category": "misc"}},
            422,
            "validation_error",
        ),
        ("POST", "/api/v1/tickets", {"json": {"title": "only a title"}}, 422, "validation_error"),
        ("POST", "/api/v1/tickets", {"json": {**VALID, "title": "   "}}, 422, "validation_error"),
        (
            "POST",
            "/api/v1/tickets",
            {"json": {**VALID, "title": "x" * 201}},
            422,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/tickets",
            {"json": {**VALID, "title": "nul\u0000byte"}},
            422,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/tickets",
            {"json": {**VALID, "title": "two\nlines"}},
            422,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/tickets",
            {
                "data": '{"title": "\\ud800", "description": "x"}',
                "content_type": "application/json",
            },
            422,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/tickets",
            {"data": "[" * 20_000 + "]" * 20_000, "content_type": "application/json"},
            400,
            "invalid_json",
        ),
        ("POST", "/api/v1/tickets", {"json": [VALID]}, 422, "validation_error"),
        ("POST", "/api/v1/tickets", {"json": "a string"}, 422, "validation_error"),
        (
            "POST",
            "/api/v1/tickets",
            {"data": '{"title": "x", ', "content_type": "application/json"},
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/api/v1/tickets",
            {"data": b'{"title": "\xff\xfe"}', "content_type": "application/json"},
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/api/v1/tickets",
            {"data": "", "content_type": "application/json"},
            422,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/tickets",
            {"json": {**VALID, "description": big}},
            413,
            "payload_too_large",
        ),
        (
            "POST",
            "/api/v1/tickets",
            {"data": "title=x&description=y", "content_type": "application/x-www-form-urlencoded"},
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/api/v1/tickets",
            {"json": VALID, "headers": {"Idempotency-Key": "é"}},
            422,
            "validation_error",
        ),
        (
            "POST",
            "/api/v1/tickets",
            {"json": VALID, "headers": {"Idempotency-Key": "k" * 256}},
            422,
            "validation_error",
        ),
        # messages
        (
            "POST",
            f"/api/v1/tickets/{tid}/messages",
            {"json": {"body": ""}},
            422,
            "validation_error",
        ),
        (
            "POST",
            f"/api/v1/tickets/{tid}/messages",
            {"json": {"body": ["a"]}},
            422,
            "validation_error",
        ),
        (
            "POST",
            f"/api/v1/tickets/{tid}/messages",
            {"json": {"body": "x" * 20_001}},
            422,
            "validation_error",
        ),
        # lists and paths
        ("GET", "/api/v1/tickets?limit=0", {}, 422, "validation_error"),
        ("GET", "/api/v1/tickets?limit=ten", {}, 422, "validation_error"),
        ("GET", "/api/v1/tickets?status=pending", {}, 422, "validation_error"),
        ("GET", "/api/v1/tickets?sort=title", {}, 422, "validation_error"),
        ("GET", "/api/v1/tickets?cursor=not-a-cursor", {}, 400, "invalid_cursor"),
        ("GET", "/api/v1/tickets?cursor=eyJhZnRlciI6IDF9", {}, 400, "invalid_cursor"),
        ("GET", "/api/v1/tickets/99999999999999", {}, 404, "not_found"),
        ("GET", "/api/v1/tickets/-1", {}, 404, "not_found"),
        ("GET", "/api/v1/tickets/abc", {}, 404, "not_found"),
        ("DELETE", f"/api/v1/tickets/{tid}", {}, 405, "method_not_allowed"),
        ("GET", "/api/v1/nothing-here", {}, 404, "not_found"),
    ]


def _staff_cases(tid: int):
    return [
        (
            "POST",
            f"/api/v1/staff/tickets/{tid}/messages",
            {"json": {"body": "x", "internal": "yes"}},
            422,
            "validation_error",
        ),
        (
            "POST",
            f"/api/v1/staff/tickets/{tid}/messages",
            {"json": {"body": "x", "internal": 1}},
            422,
            "validation_error",
        ),
        (
            "POST",
            f"/api/v1/staff/tickets/{tid}/assign",
            {"json": {"assignee_id": "1"}},
            422,
            "validation_error",
        ),
        (
            "POST",
            f"/api/v1/staff/tickets/{tid}/assign",
            {"json": {"assignee_id": True}},
            422,
            "validation_error",
        ),
        (
            "POST",
            f"/api/v1/staff/tickets/{tid}/assign",
            {"json": {"assignee_id": 1.5}},
            422,
            "validation_error",
        ),
        (
            "POST",
            f"/api/v1/staff/tickets/{tid}/assign",
            {"json": {"assignee_id": 2**40}},
            422,
            "validation_error",
        ),
        (
            "POST",
            f"/api/v1/staff/tickets/{tid}/assign",
            {"json": {"assignee_id": 999_999}},
            422,
            "validation_error",
        ),
        ("POST", f"/api/v1/staff/tickets/{tid}/assign", {"json": {}}, 422, "validation_error"),
        (
            "POST",
            f"/api/v1/staff/tickets/{tid}/status",
            {"json": {"status": "done"}},
            422,
            "validation_error",
        ),
        ("PATCH", f"/api/v1/staff/tickets/{tid}", {"json": {}}, 422, "validation_error"),
        (
            "PATCH",
            f"/api/v1/staff/tickets/{tid}",
            {"json": {"priority": "urgent"}},
            422,
            "validation_error",
        ),
        (
            "PATCH",
            f"/api/v1/staff/tickets/{tid}",
            {"json": {"status": "closed"}},
            422,
            "validation_error",
        ),
        ("GET", "/api/v1/staff/tickets?partner_id=0", {}, 422, "validation_error"),
        ("GET", "/api/v1/staff/tickets?partner_id=99999999999", {}, 422, "validation_error"),
        ("GET", "/api/v1/staff/tickets?assignee=someone", {}, 422, "validation_error"),
        ("GET", "/api/v1/staff/tickets?overdue=maybe", {}, 422, "validation_error"),
        ("GET", "/api/v1/staff/tickets?order=random", {}, 422, "validation_error"),
    ]


def _attachments_on_disk(app) -> list[Path]:
    return [p for p in Path(app.config["ATTACHMENTS_DIR"]).rglob("*") if p.is_file()]


def test_bad_json_input_is_refused_and_writes_nothing(app, client, make):
    acme = make.partner()
    admin = make.staff("admin")
    tid = make.ticket(acme)["id"]
    before = row_counts(app)
    for party, cases in ((acme, _json_cases(tid)), (admin, _staff_cases(tid))):
        for method, url, kwargs, status, code in cases:
            headers = {**party.headers, **kwargs.pop("headers", {})}
            response = client.open(url, method=method, headers=headers, **kwargs)
            try:
                error = assert_error(response, status, code)
            except AssertionError as exc:
                raise AssertionError(f"{method} {url} {kwargs}: {exc}") from None
            if status == 422 and code == "validation_error":
                assert error["details"]["fields"], (url, error)
    assert row_counts(app) == before


def test_validation_errors_name_the_field(client, make):
    acme = make.partner()
    r = client.post(
        "/api/v1/tickets",
        headers=acme.headers,
        json={"title": 1, "priority": "urgent", "extra": True},
    )
    fields = assert_error(r, 422, "validation_error")["details"]["fields"]["json"]
    assert set(fields) == {"title", "priority", "extra", "description"}
    assert fields["extra"] == ["Unknown field."]
    assert "critical" in fields["priority"][0]


def test_bad_uploads_are_refused_and_leave_no_file(app, client, make):
    acme = make.partner()
    tid = make.ticket(acme)["id"]
    url = f"/api/v1/tickets/{tid}/attachments"
    before = row_counts(app)
    max_bytes = app.extensions["ticketing"].attachments.max_bytes
    cases = [
        ({"data": {}}, 422, "validation_error"),  # no file
        ({"data": {"file": "just text"}}, 422, "validation_error"),  # not a file part
        (
            {"data": {"file": (io.BytesIO(b"MZ\x90"), "tool.exe", "application/x-msdownload")}},
            415,
            "unsupported_media_type",
        ),
        (
            {"data": {"file": (io.BytesIO(b"not a png"), "shot.png", "image/png")}},
            422,
            "validation_error",
        ),
        ({"data": {"file": (io.BytesIO(b""), "empty.txt", "text/plain")}}, 422, "validation_error"),
        (
            {"data": {"file": (io.BytesIO(b"x"), "a.txt", "text/plain"), "internal": "true"}},
            422,
            "validation_error",
        ),  # partners: no
        (
            {"data": {"file": (io.BytesIO(b"x" * (max_bytes + 1)), "big.txt", "text/plain")}},
            413,
            "payload_too_large",
        ),
        ({"json": {"file": "x"}}, 422, "validation_error"),
    ]
    for kwargs, status, code in cases:
        if "data" in kwargs:
            kwargs["content_type"] = "multipart/form-data"
        response = client.post(url, headers=acme.headers, **kwargs)
        try:
            assert_error(response, status, code)
        except AssertionError as exc:
            raise AssertionError(f"{kwargs}: {exc}") from None
    assert row_counts(app) == before
    assert _attachments_on_disk(app) == []


def test_oversize_upload_body_is_413_json(app, client, make):
    acme = make.partner()
    tid = make.ticket(acme)["id"]
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = b"x" * (limit + 10)
    r = client.post(
        f"/api/v1/tickets/{tid}/attachments",
        headers=acme.headers,
        data=body,
        content_type="multipart/form-data; boundary=zzz",
    )
    assert_error(r, 413, "payload_too_large")


def test_missing_and_bad_keys_are_401_json(client, make):
    make.partner()
    assert_error(client.get("/api/v1/tickets"), 401, "unauthorized")
    assert_error(
        client.get("/api/v1/tickets", headers={"X-API-Key": "secret"}), 401, "unauthorized"
    )
    assert_error(
        client.get("/api/v1/tickets", headers={"X-API-Key": "pw_0123456789ab_" + "A" * 43}),
        401,
        "unauthorized",
    )
    # Authentication comes before the body is read.
    assert_error(
        client.post("/api/v1/tickets", data="{", content_type="application/json"),
        401,
        "unauthorized",
    )
