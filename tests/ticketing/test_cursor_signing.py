"""Cursors are signed with the service's secret and checked before any query runs.

A forged, altered or foreign cursor is a 400 ``invalid_cursor`` on every list that
pages (the partner list, the staff queue in each order, webhook deliveries, security
events), on SQLite and PostgreSQL: never a 500 such as PostgreSQL's "integer out of
range" for ``after`` = 2**31. Cursors the service wrote keep working.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from itsdangerous import URLSafeSerializer

from ticketing.api import pagination
from ticketing.api.pagination import CURSOR_SALT, decode_cursor, encode_cursor, fingerprint
from ticketing.db import db
from ticketing.errors import ApiError
from ticketing.webhooks.models import WebhookEndpoint


def _plain(payload: Any) -> str:
    """A cursor as the service wrote them before they were signed (base64url JSON)."""
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _signed(app, payload: Any) -> str:
    """A payload signed with the app's own cursor key: what only a leaked secret allows."""
    with app.app_context():
        return pagination._signing().dumps(payload)


def _other_key(payload: Any) -> str:
    return URLSafeSerializer("not-the-service-secret-" * 2, salt=CURSOR_SALT).dumps(payload)


UNFILTERED = fingerprint({})
DUE = fingerprint({"order": "due"})

#: (name, payload) of cursors signed with the right key that are still not ours: bounds,
#: types, extra keys. Each is refused on the partner list (newest first, unkeyed).
SIGNED_BAD = [
    ("after 2**31", {"after": 2**31, "desc": True, "f": UNFILTERED}),
    ("after 2**63", {"after": 2**63, "desc": True, "f": UNFILTERED}),
    ("after 0", {"after": 0, "desc": True, "f": UNFILTERED}),
    ("after -1", {"after": -1, "desc": True, "f": UNFILTERED}),
    ("after true", {"after": True, "desc": True, "f": UNFILTERED}),
    ("after a string", {"after": "5", "desc": True, "f": UNFILTERED}),
    ("after a float", {"after": 5.0, "desc": True, "f": UNFILTERED}),
    ("after null", {"after": None, "desc": True, "f": UNFILTERED}),
    ("desc 1", {"after": 5, "desc": 1, "f": UNFILTERED}),
    ("desc missing", {"after": 5, "f": UNFILTERED}),
    ("fingerprint a number", {"after": 5, "desc": True, "f": 7}),
    ("other filters", {"after": 5, "desc": True, "f": fingerprint({"status": ["open"]})}),
    ("other order", {"after": 5, "desc": False, "f": UNFILTERED}),
    ("sort key on an unkeyed list", {"after": 5, "desc": True, "f": UNFILTERED, "k": "x"}),
    ("unknown key", {"after": 5, "desc": True, "f": UNFILTERED, "x": 1}),
    ("a list", [5, True, UNFILTERED]),
    ("a number", 5),
]

#: Cursors for the staff queue's ``order=due`` (keyed by the next due time).
SIGNED_BAD_DUE = [
    ("after 2**31", {"after": 2**31, "desc": False, "f": DUE, "k": "2030-01-01T00:00:00"}),
    ("sort key missing", {"after": 5, "desc": False, "f": DUE}),
    ("sort key a number", {"after": 5, "desc": False, "f": DUE, "k": 1700000000}),
    (
        "sort key with a zone",
        {"after": 5, "desc": False, "f": DUE, "k": "2030-01-01T00:00:00+00:00"},
    ),
    ("sort key not a time", {"after": 5, "desc": False, "f": DUE, "k": "soon"}),
    ("sort key a date only", {"after": 5, "desc": False, "f": DUE, "k": "2030-01-01"}),
    ("sort key out of range", {"after": 5, "desc": False, "f": DUE, "k": "2030-13-01T00:00:00"}),
]


def _unsigned_variants(app) -> list[tuple[str, str]]:
    good = {"after": 5, "desc": True, "f": UNFILTERED}
    real = _signed(app, good)
    payload, _, signature = real.rpartition(".")
    altered = _plain({"after": 2**31, "desc": True, "f": UNFILTERED})
    return [
        ("unsigned, after 2**31", _plain({"after": 2**31, "desc": True, "f": UNFILTERED})),
        ("unsigned, well-formed", _plain(good)),
        ("signed with another key", _other_key(good)),
        ("payload altered, signature kept", f"{altered}.{signature}"),
        ("signature altered", f"{payload}.{signature[:-2]}AA"),
        ("signature removed", payload),
        ("not base64", "%%%not-a-cursor%%%"),
        ("non-ASCII", "１２３"),
        ("empty signature", f"{payload}."),
    ]


def _assert_invalid_cursor(response, name: str) -> None:
    assert response.status_code == 400, (name, response.status_code, response.text)
    error = response.get_json()["error"]
    assert error["code"] == "invalid_cursor", (name, error)
    assert isinstance(error["message"], str) and error["details"] == {}, (name, error)


def test_forged_and_altered_cursors_are_400_on_the_partner_list(app, client, make):
    acme = make.partner("Acme")
    for n in range(3):
        make.ticket(acme, title=f"Ticket {n}")
    cases = [(name, _signed(app, payload)) for name, payload in SIGNED_BAD]
    cases += _unsigned_variants(app)
    for name, cursor in cases:
        response = client.get(
            "/api/v1/tickets", query_string={"cursor": cursor}, headers=acme.headers
        )
        _assert_invalid_cursor(response, name)


@pytest.mark.parametrize("order", ["oldest", "newest", "due"])
def test_forged_cursors_are_400_on_the_staff_queue(app, client, make, order):
    acme = make.partner("Acme")
    admin = make.staff("admin")
    make.ticket(acme)
    desc = order == "newest"
    filters = fingerprint({"order": order})
    cases = [
        ("after 2**31", _signed(app, {"after": 2**31, "desc": desc, "f": filters})),
        ("unsigned", _plain({"after": 2**31, "desc": desc, "f": filters})),
        ("another key", _other_key({"after": 5, "desc": desc, "f": filters})),
    ]
    if order == "due":
        cases += [(name, _signed(app, payload)) for name, payload in SIGNED_BAD_DUE]
    for name, cursor in cases:
        response = client.get(
            "/api/v1/staff/tickets",
            query_string={"order": order, "cursor": cursor},
            headers=admin.headers,
        )
        _assert_invalid_cursor(response, f"{order}: {name}")


@pytest.mark.parametrize("order", [None, "newest", "due"])
def test_the_service_own_cursors_page_through_every_list(client, make, order):
    acme = make.partner("Acme")
    admin = make.staff("admin")
    ids = {make.ticket(acme, title=f"Ticket {n}")["id"] for n in range(5)}
    query: dict[str, Any] = {"limit": 2, **({"order": order} if order else {})}
    seen, cursor, pages = [], None, 0
    while True:
        response = client.get(
            "/api/v1/staff/tickets",
            query_string={**query, **({"cursor": cursor} if cursor else {})},
            headers=admin.headers,
        )
        assert response.status_code == 200, response.text
        body = response.get_json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert "." in cursor  # payload.signature
    assert sorted(seen) == sorted(ids) and len(seen) == 5 and pages == 3

    # The partner list, newest first, the same way.
    seen, cursor = [], None
    while True:
        response = client.get(
            "/api/v1/tickets",
            query_string={"limit": 2, **({"cursor": cursor} if cursor else {})},
            headers=acme.headers,
        )
        assert response.status_code == 200, response.text
        seen += [item["id"] for item in response.get_json()["items"]]
        cursor = response.get_json()["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)


def test_a_cursor_of_another_deployment_is_refused(app, client, make):
    """Two services with different secrets: neither accepts the other's cursors."""
    acme = make.partner("Acme")
    for n in range(3):
        make.ticket(acme, title=f"Ticket {n}")
    first = client.get("/api/v1/tickets?limit=1", headers=acme.headers).get_json()["next_cursor"]
    assert first
    again = client.get(
        "/api/v1/tickets", query_string={"cursor": first, "limit": 1}, headers=acme.headers
    )
    assert again.status_code == 200
    payload = json.loads(base64.urlsafe_b64decode(first.split(".")[0] + "=="))
    assert payload["after"] >= 1
    forged = _other_key(payload)
    response = client.get("/api/v1/tickets", query_string={"cursor": forged}, headers=acme.headers)
    _assert_invalid_cursor(response, "another deployment's cursor")


def test_webhook_deliveries_and_security_events_refuse_forged_cursors(app, client, make):
    """The other lists use the same functions (paginate, decode_cursor)."""
    acme = make.partner("Acme")
    admin = make.staff("admin")
    with app.app_context():
        endpoint = WebhookEndpoint(
            partner_id=acme.id,
            url="https://hooks.example.com/pw",
            events=["ticket.created"],
            secret="whsec_test",
        )
        db.session.add(endpoint)
        db.session.commit()
        endpoint_id = endpoint.id
    filters = fingerprint({"endpoint": endpoint_id})
    for cursor in [
        _signed(app, {"after": 2**31, "desc": True, "f": filters}),
        _plain({"after": 2**31, "desc": True, "f": filters}),
        _other_key({"after": 1, "desc": True, "f": filters}),
    ]:
        response = client.get(
            f"/api/v1/webhooks/{endpoint_id}/deliveries",
            query_string={"cursor": cursor},
            headers=acme.headers,
        )
        _assert_invalid_cursor(response, "webhook deliveries")
    for cursor in [
        _signed(app, {"after": 2**31, "desc": True, "f": fingerprint({})}),
        _plain({"after": 2**31, "desc": True, "f": fingerprint({})}),
    ]:
        response = client.get(
            "/api/v1/staff/security-events", query_string={"cursor": cursor}, headers=admin.headers
        )
        # The security API answers its own query errors (400 invalid_query, per parameter).
        assert response.status_code == 400, response.text
        assert "cursor" in json.dumps(response.get_json())


def test_encode_and_decode_round_trip_and_bounds(app):
    with app.test_request_context():
        cursor = encode_cursor(7, True, {"status": ["open"]})
        assert decode_cursor(cursor, True, {"status": ["open"]}) == 7
        with pytest.raises(ApiError) as refused:
            decode_cursor(cursor, True, {"status": ["closed"]})
        assert refused.value.code == "invalid_cursor"
        for bad_id in (0, 2**31):
            with pytest.raises(ApiError):
                decode_cursor(encode_cursor(bad_id, True, {}), True, {})
        with pytest.raises(ApiError):
            decode_cursor("x" * 600, True, {})
