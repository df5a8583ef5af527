"""The monitor inside the ticket service: real auth, real 404s, the outbox, the migrations."""

from __future__ import annotations

import pytest

from tests.harness.app import migrated_app, ticketing_config
from tests.harness.security import events
from tests.harness.seed import Maker
from ticketing.db import db
from ticketing.outbox import OutboxMessage

UNKNOWN_KEY = "pw_0123456789ab_" + "A" * 43


@pytest.fixture
def service(db_url, redis_url, tmp_path):
    # Migrated: 0001_initial -> 0002_security_events -> 0003_outbox ...
    yield from migrated_app(
        ticketing_config(
            db_url,
            tmp_path,
            ticketing={"ratelimits": {"limits": {"ticket_create": "3/minute"}}},
            REDIS_URL=redis_url,
        )
    )


def party(app, kind: str, name: str, role: str = "agent") -> tuple[int, dict[str, str]]:
    maker = Maker(app, app.test_client())
    who = maker.partner(name) if kind == "partner" else maker.staff(role, name=name)
    return who.id, who.headers


def outbox(app) -> list[dict]:
    with app.app_context():
        rows = db.session.execute(
            db.select(OutboxMessage)
            .where(OutboxMessage.kind == "security_event")
            .order_by(OutboxMessage.id)
        ).scalars()
        return [row.payload for row in rows]


def test_security_events_in_the_ticket_service(service):
    client = service.test_client()
    acme_id, acme = party(service, "partner", "Acme")
    rival_id, rival = party(service, "partner", "Rival")
    _, admin = party(service, "staff", "Admin", role="admin")  # security events: admins only

    # A partner's text is stored as written, and the attack pattern in it reported.
    description = "Our shop shows <script>alert(1)</script> in the product name."
    r = client.post(
        "/api/v1/tickets",
        headers=acme,
        json={"title": "Weird text in shop", "description": description},
    )
    assert r.status_code == 201
    ticket_id = r.json["id"]
    assert (
        client.get(f"/api/v1/tickets/{ticket_id}", headers=acme).json["description"] == description
    )
    [pattern] = events(service, type="SUSPICIOUS_PATTERN")
    assert (pattern.actor_kind, pattern.actor_id) == ("partner", str(acme_id))
    assert pattern.details["findings"][0]["field"] == "description"

    # Another partner's ticket: still the plain 404, and recorded.
    r = client.get(f"/api/v1/tickets/{ticket_id}", headers=rival)
    assert r.status_code == 404 and r.json["error"]["code"] == "not_found"
    [denied] = events(service, type="UNAUTHORIZED_ACCESS")
    assert (denied.actor_kind, denied.actor_id) == ("partner", str(rival_id))
    assert denied.details == {"resource": "ticket", "resource_id": str(ticket_id)}

    # Ticket creation has its own limit (3/minute here; one ticket exists).
    for _ in range(2):
        assert (
            client.post(
                "/api/v1/tickets", headers=acme, json={"title": "Another", "description": "text"}
            ).status_code
            == 201
        )
    r = client.post("/api/v1/tickets", headers=acme, json={"title": "One more", "description": "x"})
    assert r.status_code == 429 and r.json["error"]["details"]["action"] == "ticket_create"
    assert r.headers["X-RateLimit-Limit"] == "3" and int(r.headers["Retry-After"]) > 0

    # Staff see the events; partners do not.
    listed = client.get("/api/v1/staff/security-events", headers=admin).json["items"]
    assert {e["type"] for e in listed} == {
        "SUSPICIOUS_PATTERN",
        "UNAUTHORIZED_ACCESS",
        "RATE_LIMIT_EXCEEDED",
    }
    r = client.get("/api/v1/staff/security-events", headers=acme)
    assert r.status_code == 403 and set(r.json["error"]) == {"code", "message", "details"}

    # Unknown keys: FAILED_AUTH each, MULTIPLE_FAILED_LOGINS at the 5th, then 429s.
    for _ in range(5):
        r = client.get("/api/v1/tickets", headers={"X-API-Key": UNKNOWN_KEY})
        assert r.status_code == 401
    assert client.get("/api/v1/tickets", headers={"X-API-Key": UNKNOWN_KEY}).status_code == 429
    [failed] = events(service, type="FAILED_AUTH")
    assert failed.count == 5 and failed.details["key_prefix"] == "0123456789ab"
    [escalated] = events(service, type="MULTIPLE_FAILED_LOGINS")
    assert sorted(escalated.details["dimensions"]) == ["ip", "key_prefix"]

    # Severe events went to the outbox for the security team, in their own transaction.
    alerts = {p["labels"]["alertname"]: p for p in outbox(service)}
    assert set(alerts) == {
        "SecuritySuspiciousPattern",
        "SecurityUnauthorizedAccess",
        "SecurityMultipleFailedLogins",
    }
    for payload in alerts.values():
        assert payload["labels"]["team"] == "security"
        assert payload["annotations"]["summary"] and payload["annotations"]["runbook_url"]
    assert alerts["SecurityMultipleFailedLogins"]["labels"]["severity"] == "critical"
    assert alerts["SecurityUnauthorizedAccess"]["labels"]["security_event"] == str(denied.id)


def test_the_route_is_in_the_openapi_document(service):
    spec = service.test_client().get("/api/openapi.json").json
    operation = spec["paths"]["/api/v1/staff/security-events"]["get"]
    assert operation["tags"] == ["security"] and "403" in operation["responses"]
