"""GET /api/v1/staff/security-events: filters and pages for staff, refused to partners."""

from __future__ import annotations

from tests.harness.security import key
from tests.harness.seed import security_events


def get(client, who="staff", **params):
    return client.get(
        "/api/v1/staff/security-events", query_string=params, headers=key(who) if who else {}
    )


def test_staff_list_and_filter_events(client, app):
    security_events(app)
    body = get(client).json
    assert body["next_cursor"] is None and len(body["items"]) == 9
    newest = body["items"][0]
    assert newest["type"] == "UNAUTHORIZED_ACCESS" and newest["severity"] == "warning"
    assert newest["actor"] == {"kind": "partner", "id": "2"}
    assert newest["details"] == {"resource": "thing", "resource_id": "3"}
    assert newest["count"] == 1 and newest["first_seen"].endswith("Z")

    assert [e["type"] for e in get(client, type="MULTIPLE_FAILED_LOGINS").json["items"]] == [
        "MULTIPLE_FAILED_LOGINS"
    ]
    assert {e["severity"] for e in get(client, severity="info").json["items"]} == {"info"}
    assert {e["type"] for e in get(client, ip="192.0.2.1").json["items"]} == {
        "FAILED_AUTH",
        "MULTIPLE_FAILED_LOGINS",
    }
    assert get(client, since="2999-01-01T00:00:00Z").json["items"] == []
    assert len(get(client, since="2000-01-01T00:00:00+02:00").json["items"]) == 9


def test_pages_follow_the_cursor(client, app):
    security_events(app)
    seen, cursor = [], None
    while True:
        params = {"type": "FAILED_AUTH", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = get(client, **params).json
        seen += [e["id"] for e in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7 and len(set(seen)) == 7 and seen == sorted(seen, reverse=True)
    # A cursor belongs to its filters.
    first = get(client, type="FAILED_AUTH", limit=3).json["next_cursor"]
    r = get(client, type="UNAUTHORIZED_ACCESS", cursor=first)
    assert r.status_code == 400 and "cursor" in r.json["error"]["details"]["fields"]


def test_partners_and_anonymous_callers_are_refused(client, app):
    security_events(app)
    r = get(client, who="partner1")
    assert r.status_code == 403 and r.json["error"]["code"] == "forbidden"
    assert set(r.json["error"]) == {"code", "message", "details"}
    r = get(client, who=None)
    assert r.status_code == 401 and r.json["error"]["code"] == "unauthorized"


def test_invalid_parameters_are_400s_not_500s(client):
    for params in (
        {"type": "NOPE"},
        {"severity": "loud"},
        {"since": "yesterday"},
        {"limit": "0"},
        {"limit": "201"},
        {"limit": "x"},
        {"limit": "9" * 40},
        {"cursor": "!!!"},
        {"cursor": "e30"},
    ):
        r = get(client, **params)
        assert r.status_code == 400, (params, r.status_code)
        assert r.json["error"]["code"] == "invalid_query"
