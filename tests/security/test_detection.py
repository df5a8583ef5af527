"""Each pattern class is detected in each part of a request, plain and encoded.

The app echoes what it received, which shows that detection never changes
what the client sent; only the classes in ``security.block`` found in the URL
are refused.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.harness.security import counter, events, key, send

PAYLOADS = {
    "sql_injection": "x' OR '1'='1",
    "xss": "<script>alert(1)</script>",
    "path_traversal": "../../etc/passwd",
    "command_injection": "$(whoami)",
    "null_byte": "report.pdf\x00.txt",
}
ENCODINGS = {
    "plain": lambda v: v,
    "encoded": lambda v: quote(v, safe=""),
    "double-encoded": lambda v: quote(quote(v, safe=""), safe=""),
}
BLOCKED_IN_URL = {"path_traversal", "null_byte"}


@pytest.fixture(scope="module")
def scanned_app(tmp_path_factory):
    from tests.harness.security_app import build_app
    from ticketing.db import db

    app = build_app(
        f"sqlite:///{tmp_path_factory.mktemp('detect') / 'app.db'}", ratelimits={"enabled": False}
    )
    yield app
    with app.app_context():
        db.engine.dispose()


# Every class in every part and encoding, except a raw NUL byte in a header,
# which HTTP cannot carry (its encoded forms are covered).
CASES = [
    (c, p, e)
    for c in PAYLOADS
    for p in ["path", "query", "form", "json", "header"]
    for e in ENCODINGS
    if not (p == "header" and "\x00" in ENCODINGS[e](PAYLOADS[c]))
]


@pytest.mark.parametrize("pattern_class,part,encoding", CASES)
def test_pattern_detected_in_every_part(scanned_app, pattern_class, part, encoding):
    value = ENCODINGS[encoding](PAYLOADS[pattern_class])
    client = scanned_app.test_client()
    before = counter("security_events_total", type="SUSPICIOUS_PATTERN", severity="warning")
    previous = {e.id: e.count for e in events(scanned_app, type="SUSPICIOUS_PATTERN")}

    response = send(client, part, value)

    assert response.status_code < 500
    assert (
        counter("security_events_total", type="SUSPICIOUS_PATTERN", severity="warning")
        == before + 1
    )
    [event] = events(scanned_app, type="SUSPICIOUS_PATTERN")
    assert event.count == previous.get(event.id, 0) + 1
    found = {(f["class"], f["part"]) for f in event.details["findings"]}
    assert (pattern_class, part) in found, event.details
    assert event.actor_kind == "partner" and event.actor_id == "1"
    assert event.client_ip == "127.0.0.1" and event.method == response.request.method

    blocked = part in ("path", "query") and pattern_class in BLOCKED_IN_URL
    if blocked:
        assert response.status_code == 400
        assert response.json["error"]["code"] == "suspicious_request"
        assert pattern_class in event.details["blocked"]
    else:
        assert response.status_code != 400 and event.details["blocked"] == []
    if part in ("query", "form", "json") and not blocked:
        echoed = response.json
        received = {
            "query": lambda: echoed["args"]["search"],
            "form": lambda: echoed["body"]["comment"],
            "json": lambda: echoed["body"]["ticket"]["notes"][1],
        }[part]()
        assert received == value  # detection does not alter what the client sent


def test_clean_requests_record_nothing(client, app):
    before = counter("security_events_total", type="SUSPICIOUS_PATTERN", severity="warning")
    r = client.post(
        "/api/v1/echo?page=2&status=open",
        headers=key("partner1"),
        json={
            "title": "Invoice 2024-11 missing",
            "amount": 12.5,
            "tags": ["billing", "urgent"],
            "nested": {"note": "50% off?"},
        },
    )
    assert r.status_code == 200
    assert events(app) == []
    assert counter("security_events_total", type="SUSPICIOUS_PATTERN", severity="warning") == before


def test_blocking_can_be_configured(make_app):
    app = make_app(security={"block": ["sql_injection"]}, ratelimits={"enabled": False})
    client = app.test_client()
    r = client.get(
        "/api/v1/echo",
        query_string={"q": "1 UNION SELECT password FROM users"},
        headers=key("partner1"),
    )
    assert r.status_code == 400 and r.json["error"]["details"] == {"classes": ["sql_injection"]}
    # Traversal is no longer blocked, only reported.
    r = client.get(
        "/api/v1/echo", query_string={"file": "../../etc/passwd"}, headers=key("partner1")
    )
    assert r.status_code == 200
    # Bodies are never blocked.
    r = client.post(
        "/api/v1/echo", json={"q": "1 UNION SELECT password FROM users"}, headers=key("partner1")
    )
    assert r.status_code == 200
    assert events(app)[0].count == 3


def test_scanning_can_be_switched_off(make_app):
    app = make_app(security={"scan": {"enabled": False}})
    r = app.test_client().get(
        "/api/v1/echo", query_string={"q": "<script>"}, headers=key("partner1")
    )
    assert r.status_code == 200 and events(app) == []


def test_hostile_bodies_cost_bounded_work_and_never_fail(client, app):
    deep: object = "<script>"
    for _ in range(200):
        deep = [deep]
    r = client.post("/api/v1/echo", json={"deep": deep}, headers=key("partner1"))
    assert r.status_code < 500
    r = client.post(
        "/api/v1/echo",
        data=b'{"broken": "json',
        headers={**key("partner1"), "Content-Type": "application/json"},
    )
    assert r.status_code < 500
    many = {f"k{i}": "' OR '1'='1" for i in range(6000)}
    r = client.post("/api/v1/echo", json=many, headers=key("partner1"))
    assert r.status_code == 200
    [event] = events(app)
    assert len(event.details["findings"]) == 20  # the row keeps a sample
    assert event.details["findings_total"] >= 2500
