"""Status transitions, automatic priority and category, staff overrides, SLA due and overdue."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.harness.assertions import assert_error, row_counts
from ticketing.config import load_sections
from ticketing.db import db
from ticketing.desk.settings import check_core
from ticketing.desk.triage import Classifier
from ticketing.desk.workflow import TRANSITIONS
from ticketing.models import Ticket


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).replace(tzinfo=None)


def _set_status(app, ticket_id: int, status: str) -> None:
    with app.app_context():
        db.session.get(Ticket, ticket_id).status = status
        db.session.commit()


def test_every_transition_is_allowed_or_409(app, client, make):
    """The whole table: each allowed move works, each other one is 409 listing the allowed."""
    acme = make.partner()
    agent = make.staff()
    tid = make.ticket(acme)["id"]
    url = f"/api/v1/staff/tickets/{tid}/status"
    for current, allowed in TRANSITIONS.items():
        for target in ("open", "in_progress", "resolved", "closed"):
            _set_status(app, tid, current)
            before = row_counts(app)
            r = client.post(url, headers=agent.headers, json={"status": target})
            if target in allowed:
                assert r.status_code == 200, (current, target, r.json)
                assert r.json["status"] == target
            else:
                error = assert_error(r, 409, "invalid_transition")
                assert error["details"] == {
                    "status": current,
                    "requested": target,
                    "allowed": list(allowed),
                }
                assert current in error["message"] and target in error["message"]
                assert row_counts(app) == before


def test_partner_close_and_reopen_rules(app, client, make):
    acme = make.partner()
    tid = make.ticket(acme)["id"]
    error = assert_error(
        client.post(f"/api/v1/tickets/{tid}/reopen", headers=acme.headers),
        409,
        "invalid_transition",
    )
    assert error["details"]["allowed"] == ["closed"]
    assert client.post(f"/api/v1/tickets/{tid}/close", headers=acme.headers).status_code == 200
    error = assert_error(
        client.post(f"/api/v1/tickets/{tid}/close", headers=acme.headers), 409, "invalid_transition"
    )
    assert error["details"]["allowed"] == ["open"]
    r = client.post(f"/api/v1/tickets/{tid}/reopen", headers=acme.headers)
    assert r.status_code == 200 and r.json["status"] == "open" and r.json["closed_at"] is None


@pytest.fixture(scope="module")
def classifier():
    return Classifier(check_core(load_sections()).classification)


@pytest.mark.parametrize(
    "title, description, requested, expected",
    [
        ("URGENT: cannot log in", "Since this morning.", None, "high"),
        ("Urgently need help", "Please.", None, "high"),
        ("Question", "This is critical for our month-end run.", None, "high"),
        ("Question", "Not urgent at all.", None, "medium"),  # "urgent" counts in the title only
        ("Critical question", "hello", None, "medium"),  # "critical" in the description only
        ("An insurgent title", "hello", None, "medium"),  # not at a word start
        ("Urgent", "critical", "low", "high"),  # raised from what was asked
        ("Urgent", "hello", "critical", "critical"),  # never lowered
        ("Outage", "All transactions failing since 9:00", None, "critical"),
    ],
)
def test_priority_rules(classifier, title, description, requested, expected):
    assert classifier.classify(title, description, requested).priority == expected


@pytest.mark.parametrize(
    "title, description, expected",
    [
        ("Invoice is wrong", "We were charged twice, please refund.", "billing"),
        ("Energy pool empty", "No units left in the pool.", "energy"),
        ("API returns 503", "The endpoint /transactions answers 503.", "api"),
        ("Suspicious logins", "Possible breach: unauthorized access from abroad.", "security"),
        ("Cannot log in", "My password reset does not work for my account.", "account"),
        ("App crashes", "The integration throws an exception and crashes.", "technical"),
        ("Hello", "Just saying hi.", "other"),
    ],
)
def test_category_rules(classifier, title, description, expected):
    decision = classifier.classify(title, description)
    assert decision.category == expected, decision


def test_automatic_decisions_and_overrides_are_audited(app, client, make):
    acme = make.partner()
    admin = make.staff("admin")
    ticket = make.ticket(acme, title="URGENT: refund", description="Invoice charged twice.")
    assert (ticket["priority"], ticket["category"]) == ("high", "billing")
    tid = ticket["id"]
    r = client.patch(
        f"/api/v1/staff/tickets/{tid}",
        headers=admin.headers,
        json={"priority": "critical", "category": "energy"},
    )
    assert (r.json["priority"], r.json["category"]) == ("critical", "energy")
    trail = client.get(f"/api/v1/staff/tickets/{tid}/audit", headers=admin.headers).json["items"]
    rows = [
        (e["actor_kind"], e["actor_id"], e["field"], e["before"], e["after"], e["reason"])
        for e in trail
    ]
    assert (
        "system",
        None,
        "priority",
        "medium",
        "high",
        "rule urgent-title: 'urgent' in title",
    ) in rows
    [decision] = [e for e in trail if e["field"] == "category" and e["actor_kind"] == "system"]
    assert decision["after"] == "billing"
    assert decision["reason"].startswith("keywords: invoice, charge, refund; model agrees p=")
    assert 0.4 <= decision["confidence"] <= 1
    assert ("staff", admin.id, "priority", "high", "critical", "staff override") in rows
    assert ("staff", admin.id, "category", "billing", "energy", "staff override") in rows

    # A partner's own choice of category is kept, and audited as theirs.
    chosen = make.ticket(acme, title="Invoice", description="Refund please", category="account")
    answer = client.get(f"/api/v1/staff/tickets/{chosen['id']}/audit", headers=admin.headers)
    trail = answer.json["items"]
    assert chosen["category"] == "account"
    assert {(e["actor_kind"], e["field"], e["after"]) for e in trail} >= {
        ("partner", "category", "account")
    }


def test_sla_due_times_follow_priority(app, client, make):
    acme = make.partner()
    admin = make.staff("admin")
    sla = app.extensions["ticketing"].sla
    ticket = make.ticket(acme, title="Urgent", description="hello")
    created = _parse(ticket["created_at"])
    assert _parse(ticket["first_response_due_at"]) == created + sla.first_response["high"]
    assert _parse(ticket["resolution_due_at"]) == created + sla.resolution["high"]
    r = client.patch(
        f"/api/v1/staff/tickets/{ticket['id']}", headers=admin.headers, json={"priority": "low"}
    )
    assert _parse(r.json["first_response_due_at"]) == created + sla.first_response["low"]
    assert _parse(r.json["resolution_due_at"]) == created + sla.resolution["low"]


def _backdate(app, ticket_id: int, hours: float) -> None:
    """Make the ticket ``hours`` older (its due times move with it)."""
    with app.app_context():
        ticket = db.session.get(Ticket, ticket_id)
        shift = timedelta(hours=hours)
        ticket.created_at -= shift
        ticket.first_response_due_at -= shift
        ticket.resolution_due_at -= shift
        db.session.commit()


def test_overdue_flags_and_queue_filter(app, client, make):
    acme = make.partner()
    agent = make.staff()
    late = make.ticket(acme, title="Urgent", description="first response is late")  # high: 2h
    fresh = make.ticket(acme, title="Fresh", description="just filed")
    _backdate(app, late["id"], 3)

    seen = client.get(f"/api/v1/tickets/{late['id']}", headers=acme.headers).json
    assert seen["first_response_overdue"] is True and seen["overdue"] is True
    assert seen["resolution_overdue"] is False
    assert (
        client.get(f"/api/v1/tickets/{fresh['id']}", headers=acme.headers).json["overdue"] is False
    )

    def queue(**params):
        r = client.get("/api/v1/staff/tickets", headers=agent.headers, query_string=params)
        assert r.status_code == 200, r.json
        return [t["id"] for t in r.json["items"]]

    assert queue(overdue="true") == [late["id"]]
    assert queue(overdue="false") == [fresh["id"]]

    # The first public staff reply ends the first-response clock; an internal note does not.
    client.post(
        f"/api/v1/staff/tickets/{late['id']}/messages",
        headers=agent.headers,
        json={"body": "note", "internal": True},
    )
    assert queue(overdue="true") == [late["id"]]
    client.post(
        f"/api/v1/staff/tickets/{late['id']}/messages",
        headers=agent.headers,
        json={"body": "We are on it."},
    )
    assert queue(overdue="true") == []
    seen = client.get(f"/api/v1/tickets/{late['id']}", headers=acme.headers).json
    assert seen["first_response_overdue"] is False and seen["first_response_at"]

    # Past the resolution target (1 day for high) it is overdue again, until resolved.
    _backdate(app, late["id"], 24)
    assert queue(overdue="true") == [late["id"]]
    assert (
        client.get(f"/api/v1/staff/tickets/{late['id']}", headers=agent.headers).json[
            "resolution_overdue"
        ]
        is True
    )
    client.post(
        f"/api/v1/staff/tickets/{late['id']}/status",
        headers=agent.headers,
        json={"status": "resolved"},
    )
    assert queue(overdue="true") == []


def test_queue_filters(client, make):
    acme, rival = make.partner("Acme"), make.partner("Rival")
    agent = make.staff()
    billing = make.ticket(acme, title="Invoice wrong", description="refund please")
    energy = make.ticket(rival, title="Pool empty", description="no energy units", priority="low")
    api = make.ticket(rival, title="Urgent: API 503", description="endpoint down")
    client.post(
        f"/api/v1/staff/tickets/{api['id']}/assign",
        headers=agent.headers,
        json={"assignee_id": agent.id},
    )
    client.post(
        f"/api/v1/staff/tickets/{billing['id']}/status",
        headers=agent.headers,
        json={"status": "in_progress"},
    )

    def queue(**params):
        r = client.get("/api/v1/staff/tickets", headers=agent.headers, query_string=params)
        assert r.status_code == 200, r.json
        return [t["id"] for t in r.json["items"]]

    assert queue() == [billing["id"], energy["id"], api["id"]]
    assert queue(order="newest") == [api["id"], energy["id"], billing["id"]]
    assert queue(status="in_progress") == [billing["id"]]
    assert queue(status="open,in_progress") == [billing["id"], energy["id"], api["id"]]
    assert queue(priority="low") == [energy["id"]]
    assert queue(priority="high,low") == [energy["id"], api["id"]]
    assert queue(category="billing,energy") == [billing["id"], energy["id"]]
    assert queue(partner_id=rival.id) == [energy["id"], api["id"]]
    assert queue(assignee="me") == [api["id"]]
    assert queue(assignee=str(agent.id)) == [api["id"]]
    assert queue(assignee="none") == [billing["id"], energy["id"]]
    assert queue(partner_id=rival.id, priority="high", assignee="me") == [api["id"]]
