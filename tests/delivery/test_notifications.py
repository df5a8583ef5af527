"""Which ticket events are queued for Alertmanager, and what their alerts say."""

from __future__ import annotations

import pytest

from tests.harness.outbox import create_ticket, outbox_rows
from tests.harness.seed import seed

# What is queued does not depend on the database (test_queue.py covers both).
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.mark.parametrize(
    "title, description, severity",
    [
        ("Production down: all transactions failing", "Since 09:00.", "critical"),
        ("URGENT: invoice", "Please check.", "warning"),  # priority raised to high
        ("Invoice question", "Our invoice shows the wrong amount.", "info"),
    ],
)
def test_a_new_ticket_is_queued_with_severity_from_its_priority(
    make_app, title, description, severity
):
    app = make_app(ticket_url="https://support.example.com/tickets/{id}")
    keys = seed(app)
    ticket = create_ticket(app, keys, title=title, description=description)
    [row] = outbox_rows(app)
    assert (row.kind, row.dedup_key) == ("ticket_created", f"ticket_created:{ticket['id']}")
    labels = row.payload["labels"]
    assert labels == {
        "alertname": "SupportTicketCreated",
        "severity": severity,
        "team": "support",
        "ticket": str(ticket["id"]),
        "priority": ticket["priority"],
        "category": ticket["category"],
        "partner": str(keys.partner_id),
    }
    annotations = row.payload["annotations"]
    assert annotations["summary"] == (
        f"New {ticket['priority']} priority ticket #{ticket['id']}: {title}"
    )
    assert annotations["description"] == description
    assert annotations["runbook_url"].endswith("docs/outbox.md#supportticketcreated")
    url = f"https://support.example.com/tickets/{ticket['id']}"
    assert annotations["ticket_url"] == row.payload["generatorURL"] == url
    assert row.payload["startsAt"] == ticket["created_at"][:23] + "Z"


def test_a_refused_ticket_queues_nothing(make_app):
    app = make_app()
    keys = seed(app)
    response = app.test_client().post(
        "/api/v1/tickets", json={"title": ""}, headers={"X-API-Key": keys.partner}
    )
    assert response.status_code == 422
    assert outbox_rows(app) == []


def test_the_assignee_hears_of_partner_replies_only(make_app):
    app = make_app()
    keys = seed(app)
    client = app.test_client()
    ticket = create_ticket(app, keys)
    partner = {"X-API-Key": keys.partner}
    staff = {"X-API-Key": keys.staff}
    messages = f"/api/v1/tickets/{ticket['id']}/messages"

    # Not assigned yet: the new-ticket notification is all support gets.
    assert client.post(messages, json={"body": "Any news?"}, headers=partner).status_code == 201
    assigned = client.post(
        f"/api/v1/staff/tickets/{ticket['id']}/assign",
        json={"assignee_id": keys.staff_id},
        headers=staff,
    )
    assert assigned.status_code == 200, assigned.json
    # Staff replies and internal notes notify nobody.
    staff_messages = f"/api/v1/staff/tickets/{ticket['id']}/messages"
    assert (
        client.post(staff_messages, json={"body": "Looking into it."}, headers=staff).status_code
        == 201
    )
    assert (
        client.post(
            staff_messages, json={"body": "Billing bug?", "internal": True}, headers=staff
        ).status_code
        == 201
    )
    reply = client.post(
        messages, json={"body": "Thanks, here is the invoice number: 1234."}, headers=partner
    )
    assert reply.status_code == 201

    rows = outbox_rows(app)
    assert [row.kind for row in rows] == ["ticket_created", "partner_reply"]
    row = rows[1]
    assert row.dedup_key == f"partner_reply:{reply.json['id']}"
    assert row.payload["labels"] == {
        "alertname": "SupportPartnerReply",
        "severity": "info",
        "team": "support",
        "ticket": str(ticket["id"]),
        "message": str(reply.json["id"]),
        "assignee": str(keys.staff_id),
        "priority": ticket["priority"],
    }
    assert row.payload["annotations"]["description"] == "Thanks, here is the invoice number: 1234."
    assert row.payload["annotations"]["summary"] == (
        f"Partner replied on ticket #{ticket['id']}: Invoice question"
    )


def test_a_severe_security_event_is_queued_even_though_the_request_is_refused(make_app):
    """The security monitor hands severe events to the outbox in the transaction that
    records them, which commits although the refused request itself commits nothing."""
    app = make_app()
    keys = seed(app)
    other = seed(app)
    ticket = create_ticket(app, keys)
    response = app.test_client().get(
        f"/api/v1/tickets/{ticket['id']}", headers={"X-API-Key": other.partner}
    )
    assert response.status_code == 404
    rows = [row for row in outbox_rows(app) if row.kind == "security_event"]
    assert len(rows) == 1
    labels = rows[0].payload["labels"]
    assert labels["alertname"] == "SecurityUnauthorizedAccess"
    assert labels["team"] == "security" and labels["severity"] in ("critical", "warning")
    assert rows[0].payload["annotations"]["summary"]
