"""The whole partner and staff flows, end to end through the JSON API."""

from __future__ import annotations

from tests.harness.assertions import assert_error
from ticketing import signals
from ticketing.db import db
from ticketing.models import Message, Ticket


def test_partner_and_staff_flow(app, client, make):
    acme = make.partner("Acme Energy")
    agent = make.staff("agent")
    admin = make.staff("admin")

    # The partner files a ticket; the rules pick priority and category.
    ticket = make.ticket(
        acme,
        title="Urgent: invoice for May is wrong",
        description="We were charged twice for the May invoice.",
    )
    assert ticket["status"] == "open"
    assert ticket["priority"] == "high" and ticket["category"] == "billing"
    assert ticket["first_response_at"] is None
    assert ticket["first_response_due_at"] and ticket["resolution_due_at"]
    assert ticket["overdue"] is False
    assert "assignee_id" not in ticket and "partner_id" not in ticket
    tid = ticket["id"]

    listed = client.get("/api/v1/tickets", headers=acme.headers).json
    assert [t["id"] for t in listed["items"]] == [tid] and listed["next_cursor"] is None
    assert (
        client.get(f"/api/v1/tickets/{tid}", headers=acme.headers).json["title"]
        == "Urgent: invoice for May is wrong"
    )

    # The partner adds a message and a file.
    r = client.post(
        f"/api/v1/tickets/{tid}/messages",
        headers=acme.headers,
        json={"body": "Invoice number is 2024-05-17."},
    )
    assert r.status_code == 201 and r.json["sender_type"] == "partner"
    r = make.upload(acme, tid, b"%PDF-1.4 invoice", "invoice.pdf", "application/pdf")
    assert r.status_code == 201, r.json
    attachment = r.json
    assert attachment["filename"] == "invoice.pdf" and attachment["size"] == 16

    # Staff see it in the queue, take it, answer, add an internal note.
    queue = client.get("/api/v1/staff/tickets?status=open", headers=agent.headers).json
    assert [t["id"] for t in queue["items"]] == [tid]
    assert queue["items"][0]["partner_id"] == acme.id
    r = client.post(
        f"/api/v1/staff/tickets/{tid}/assign", headers=agent.headers, json={"assignee_id": agent.id}
    )
    assert r.status_code == 200 and r.json["assignee_id"] == agent.id
    mine = client.get("/api/v1/staff/tickets?assignee=me", headers=agent.headers).json
    assert [t["id"] for t in mine["items"]] == [tid]
    assert (
        client.get("/api/v1/staff/tickets?assignee=none", headers=agent.headers).json["items"] == []
    )
    r = client.post(
        f"/api/v1/staff/tickets/{tid}/status", headers=agent.headers, json={"status": "in_progress"}
    )
    assert r.status_code == 200 and r.json["status"] == "in_progress"
    r = client.post(
        f"/api/v1/staff/tickets/{tid}/messages",
        headers=agent.headers,
        json={"body": "Partner seems to be on the old tariff.", "internal": True},
    )
    assert r.status_code == 201 and r.json["internal"] is True
    assert (
        client.get(f"/api/v1/staff/tickets/{tid}", headers=agent.headers).json["first_response_at"]
        is None
    )
    r = client.post(
        f"/api/v1/staff/tickets/{tid}/messages",
        headers=agent.headers,
        json={"body": "We are refunding the second charge."},
    )
    assert r.status_code == 201 and r.json["internal"] is False
    staff_view = client.get(f"/api/v1/staff/tickets/{tid}", headers=agent.headers).json
    assert staff_view["first_response_at"] is not None

    # Staff download the partner's file; an admin re-triages; the agent resolves.
    r = client.get(
        f"/api/v1/staff/tickets/{tid}/attachments/{attachment['id']}", headers=agent.headers
    )
    assert r.status_code == 200 and r.data == b"%PDF-1.4 invoice"
    r = client.patch(
        f"/api/v1/staff/tickets/{tid}",
        headers=admin.headers,
        json={"priority": "medium", "category": "billing"},
    )
    assert r.status_code == 200 and r.json["priority"] == "medium"
    r = client.post(
        f"/api/v1/staff/tickets/{tid}/status", headers=agent.headers, json={"status": "resolved"}
    )
    assert r.status_code == 200 and r.json["resolved_at"] is not None

    # The partner sees the public reply only, and the resolution.
    messages = client.get(f"/api/v1/tickets/{tid}/messages", headers=acme.headers).json["items"]
    assert [m["body"] for m in messages] == [
        "Invoice number is 2024-05-17.",
        "We are refunding the second charge.",
    ]
    assert all("internal" not in m for m in messages)
    seen = client.get(f"/api/v1/tickets/{tid}", headers=acme.headers).json
    assert seen["status"] == "resolved" and seen["priority"] == "medium"

    # Not fixed after all: reopen, then close for good.
    r = client.post(f"/api/v1/tickets/{tid}/reopen", headers=acme.headers)
    assert r.status_code == 200 and r.json["status"] == "open" and r.json["resolved_at"] is None
    r = client.post(f"/api/v1/tickets/{tid}/close", headers=acme.headers)
    assert r.status_code == 200 and r.json["status"] == "closed" and r.json["closed_at"]
    assert_error(
        client.post(
            f"/api/v1/tickets/{tid}/messages", headers=acme.headers, json={"body": "one more thing"}
        ),
        409,
        "ticket_closed",
    )

    # Every change is in the audit trail, with who made it.
    trail = client.get(f"/api/v1/staff/tickets/{tid}/audit", headers=agent.headers).json["items"]
    changes = [(e["actor_kind"], e["field"], e["before"], e["after"]) for e in trail]
    assert ("system", "priority", "medium", "high") in changes
    assert ("system", "category", None, "billing") in changes
    assert ("staff", "assignee_id", None, str(agent.id)) in changes
    assert ("staff", "status", "open", "in_progress") in changes
    assert ("staff", "priority", "high", "medium") in changes
    assert ("staff", "status", "in_progress", "resolved") in changes
    assert ("partner", "status", "resolved", "open") in changes
    assert ("partner", "status", "open", "closed") in changes
    assert all(e["at"].endswith("Z") for e in trail)
    staff_entries = [e for e in trail if e["actor_kind"] == "staff"]
    assert {e["actor_id"] for e in staff_entries} == {agent.id, admin.id}


def test_signals_are_sent_inside_the_transaction(app, client, make):
    """Receivers see the change before commit, and what they add commits with it."""
    acme = make.partner()
    agent = make.staff()
    seen = []

    def on_created(sender, ticket):
        assert sender is app
        assert db.session().in_transaction() and ticket.id is not None
        # A receiver's row (as the outbox adds) commits with the ticket.
        db.session.add(
            Message(
                ticket_id=ticket.id,
                sender_type="staff",
                sender_id=agent.id,
                body="auto-acknowledged",
                internal=True,
            )
        )
        seen.append(("created", ticket.id))

    def on_message(sender, ticket, message):
        seen.append(("message", ticket.id, message.internal))

    def on_changed(sender, ticket, field, before, after, actor):
        seen.append(("changed", field, before, after, actor.kind))

    with (
        signals.ticket_created.connected_to(on_created, app),
        signals.message_posted.connected_to(on_message, app),
        signals.ticket_changed.connected_to(on_changed, app),
    ):
        ticket = make.ticket(acme)
        client.post(
            f"/api/v1/tickets/{ticket['id']}/messages", headers=acme.headers, json={"body": "hello"}
        )
        client.post(
            f"/api/v1/staff/tickets/{ticket['id']}/status",
            headers=agent.headers,
            json={"status": "in_progress"},
        )
        # A refused change sends nothing.
        client.post(
            f"/api/v1/staff/tickets/{ticket['id']}/status",
            headers=agent.headers,
            json={"status": "in_progress"},
        )

    assert seen == [
        ("created", ticket["id"]),
        ("message", ticket["id"], False),
        ("changed", "status", "open", "in_progress", "staff"),
    ]
    with app.app_context():
        notes = (
            db.session.execute(
                db.select(Message.body).where(
                    Message.ticket_id == ticket["id"], Message.internal.is_(True)
                )
            )
            .scalars()
            .all()
        )
        assert notes == ["auto-acknowledged"]
        assert db.session.get(Ticket, ticket["id"]).status == "in_progress"


def test_attachment_storage_is_safe(app, client, make):
    acme = make.partner()
    ticket = make.ticket(acme)
    r = make.upload(
        acme,
        ticket["id"],
        b"<script>alert(1)</script>",
        "..\\../../etc/pass:wd\x07.txt",
        "text/plain",
    )
    assert r.status_code == 201, r.json
    assert r.json["filename"] == "pass_wd_.txt"
    import hashlib

    assert r.json["sha256"] == hashlib.sha256(b"<script>alert(1)</script>").hexdigest()

    from pathlib import Path

    stored = [p for p in Path(app.config["ATTACHMENTS_DIR"]).rglob("*") if p.is_file()]
    assert len(stored) == 1
    assert stored[0].read_bytes() == b"<script>alert(1)</script>"
    assert len(stored[0].name) == 32 and all(c in "0123456789abcdef" for c in stored[0].name)

    r = client.get(
        f"/api/v1/tickets/{ticket['id']}/attachments/{r.json['id']}", headers=acme.headers
    )
    assert r.status_code == 200
    assert r.headers["Content-Disposition"].startswith("attachment;")
    assert "pass_wd_.txt" in r.headers["Content-Disposition"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_non_ascii_file_name_is_kept_for_download(client, make):
    acme = make.partner()
    ticket = make.ticket(acme)
    r = make.upload(acme, ticket["id"], b"a,b\n1,2\n", "Rechnung März.csv", "text/csv")
    assert r.status_code == 201 and r.json["filename"] == "Rechnung März.csv"
    r = client.get(
        f"/api/v1/tickets/{ticket['id']}/attachments/{r.json['id']}", headers=acme.headers
    )
    assert "filename*=UTF-8''Rechnung%20M%C3%A4rz.csv" in r.headers["Content-Disposition"]
