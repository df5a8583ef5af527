"""One outage, many tickets: linked to the incident, answered and resolved together.

Fifty partners file a ticket about the outage while the incident is open, ten
others ask about something else. The fifty are linked and their SLA clocks
stand still; one incident update reaches each of them once, as a public reply
(their API and their webhook), and nothing reaches the ten; resolving the
incident resolves the fifty, and each partner may reopen its own.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.harness.app import create_test_app, ticketing_config
from tests.harness.outbox import FAST_OUTBOX
from tests.harness.seed import issue_keys
from tests.harness.webhooks import FAST_WEBHOOKS, TOKEN, deliver_until, register
from ticketing.db import db
from ticketing.models import Staff
from ticketing.status import incidents
from ticketing.status.models import Incident

# Every priority due in seconds: a clock that ran would make the tickets overdue.
FAST_SLA = {
    "first_response": {p: "2s" for p in ("low", "medium", "high", "critical")},
    "resolution": {p: "3s" for p in ("low", "medium", "high", "critical")},
}

#: What partners hit by "Transactions stuck in pending" write, in their own words.
AFFECTED = [
    ("Transactions stuck in pending", "Since 09:40 UTC every transaction we send stays pending."),
    (
        "Nothing settles since this morning",
        "Our transactions are not settling, tx_{n} is still pending after 40 minutes.",
    ),  # fmt: skip
    ("Pending transactions", "All transfers since 09:45 are stuck in pending, none completed."),
    ("Settlement delayed", "Settlement of our transactions is delayed, customers are waiting."),
    ("Transaktionen hängen", "Seit 09:40 bleiben alle unsere Transaktionen im Status pending."),
    ("Transactions bloquées", "Depuis ce matin nos transactions restent en attente (pending)."),
    ("Transacciones pendientes", "Desde las 09:40 ninguna transacción se liquida, todas pending."),
    ("Transações travadas", "Desde as 09:40 as transações ficam pending e não são liquidadas."),
    ("取引が保留のまま", "09:40から送金がすべてpendingのままで、決済が完了しません。"),
    ("거래가 대기 중", "09:40부터 모든 거래가 pending 상태로 멈춰 있고 정산이 안 됩니다."),
]
#: Other partners, during the same incident, about something else.
UNAFFECTED = [
    ("Invoice for November", "Could you send the November invoice again? The PDF is missing."),
    ("How do I rotate an API key?", "Where in the docs is key rotation described?"),
    ("Add a colleague as admin", "Please add anna@example.org to our account as an admin."),
    ("Energy report per customer?", "Is it possible to break the energy report down per customer?"),
    ("Feature request: CSV export", "Could you add a CSV export of our ticket history?"),
]


@pytest.fixture
def outage(db_url, tmp_path):
    """An app with the status page, 60 partners with webhook endpoints on the sink,
    two agents, and a published incident on transactions."""
    token_file = tmp_path / "receiver_token"
    token_file.write_text(TOKEN + "\n")
    app = create_test_app(
        ticketing_config(
            db_url,
            tmp_path,
            ticketing={
                "outbox": {**FAST_OUTBOX, "worker": False},
                "webhooks": {**FAST_WEBHOOKS, "receiver_token_file": str(token_file)},
                "status": {"cache_ttl": 0},
                "sla": FAST_SLA,
                "ratelimits": {"enabled": False},
            },
        )
    )
    keys = issue_keys(app, partners=60)
    with app.app_context():
        db.session.add(Staff(name="Kim Lead", email="kim@example.org", role="admin"))
        incident = incidents.open_incident(
            app.extensions["status"].settings,
            "Transactions stuck in pending",
            ["transactions"],
            "major",
            "Transactions are not settling; we are investigating.",
            ("staff", keys.staff_id),
        )
        incidents.publish(incident, ("staff", keys.staff_id))
        db.session.commit()
        incident_id = incident.id
    yield app, keys, incident_id
    with app.app_context():
        db.engine.dispose()


def _file(client, key: str, title: str, description: str) -> dict:
    response = client.post(
        "/api/v1/tickets",
        json={"title": title, "description": description},
        headers={"X-API-Key": key},
    )
    assert response.status_code == 201, response.json
    return response.json


def test_fifty_partners_one_outage(outage, http_sink):
    app, keys, incident_id = outage
    client = app.test_client()
    staff = {"X-API-Key": keys.staff}
    for n, key in enumerate(keys.partners):
        register(app, key, f"{http_sink.url}/p{n}", events=["ticket.staff_replied"])

    affected, unaffected = keys.partners[:50], keys.partners[50:]
    filed = []
    for n, key in enumerate(affected):
        title, text = AFFECTED[n % len(AFFECTED)]
        ticket = _file(client, key, f"{title} ({n})", text.format(n=7100 + n))
        # The answer to the create request says it is a known incident, with its status.
        assert ticket["incident"] is not None, (title, text)
        assert ticket["incident"]["id"] == incident_id
        assert ticket["incident"]["status"] == "investigating"
        assert ticket["sla_paused"] is True
        filed.append(ticket["id"])
    others = []
    for n, key in enumerate(unaffected):
        title, text = UNAFFECTED[n % len(UNAFFECTED)]
        ticket = _file(client, key, title, text)
        assert ticket["incident"] is None and ticket["sla_paused"] is False, title
        others.append(ticket["id"])

    linked = client.get(f"/api/v1/staff/tickets?incident_id={incident_id}&limit=100", headers=staff)
    assert sorted(t["id"] for t in linked.json["items"]) == sorted(filed)
    audit = client.get(f"/api/v1/staff/tickets/{filed[0]}/audit", headers=staff).json["items"]
    [entry] = [e for e in audit if e["field"] == "incident_id"]
    assert entry["actor_kind"] == "system" and entry["after"] == str(incident_id)
    assert entry["reason"].startswith("matches the open incident: score")

    # Past every due time: the linked tickets' clocks stand still, the others' ran.
    time.sleep(3.5)
    overdue = client.get("/api/v1/staff/tickets?overdue=true&limit=100", headers=staff).json
    assert sorted(t["id"] for t in overdue["items"]) == sorted(others)

    # One update, to all: two staff press at once, and again later; each reply once.
    with app.app_context():
        incident = db.session.get(Incident, incident_id)
        incidents.post_update(
            incident, "identified", "A settlement worker stalled; restarting it.",
            ("staff", keys.staff_id),
        )  # fmt: skip
        db.session.commit()
        admin_key = _staff_key(app, "kim@example.org")
    results = []

    def press(key: str) -> None:
        response = app.test_client().post(
            f"/api/v1/staff/incidents/{incident_id}/replies", json={}, headers={"X-API-Key": key}
        )
        results.append((response.status_code, response.json))

    pressers = [threading.Thread(target=press, args=(k,)) for k in (keys.staff, admin_key)]
    for thread in pressers:
        thread.start()
    for thread in pressers:
        thread.join(60)
    assert [status for status, _ in results] == [200, 200], results
    assert sorted(body["sent"] for _, body in results) == [0, 50], results
    again = client.post(f"/api/v1/staff/incidents/{incident_id}/replies", json={}, headers=staff)
    assert again.json == {"sent": 0, "already": 50, "closed": 0}

    for key, ticket_id in zip(affected, filed, strict=True):
        messages = client.get(
            f"/api/v1/tickets/{ticket_id}/messages", headers={"X-API-Key": key}
        ).json["items"]
        assert [m["sender_type"] for m in messages] == ["staff"]
        assert "A settlement worker stalled" in messages[0]["body"]
        assert messages[0]["body"].startswith("Identified: Transactions stuck in pending")
    for key, ticket_id in zip(unaffected, others, strict=True):
        messages = client.get(f"/api/v1/tickets/{ticket_id}/messages", headers={"X-API-Key": key})
        assert messages.json["items"] == []

    received = deliver_until(app, http_sink, 50)
    paths = sorted(r.path for r in received)
    assert paths == sorted(f"/p{n}" for n in range(50))
    for request in received:
        event = json.loads(request.body)
        assert event["type"] == "ticket.staff_replied"
        assert "A settlement worker stalled" in event["data"]["message"]["body"]

    # Resolving the incident resolves the fifty, with its closing message.
    patched = client.patch(
        f"/api/v1/staff/incidents/{incident_id}",
        json={"closing_message": "Reply here if anything is still pending."},
        headers=staff,
    )
    assert patched.status_code == 200 and patched.json["linked_tickets"] == 50
    with app.app_context():
        incidents.resolve(
            db.session.get(Incident, incident_id), "All pending transactions settled.",
            ("staff", keys.staff_id),
        )  # fmt: skip
        db.session.commit()
    for key, ticket_id in zip(affected, filed, strict=True):
        ticket = client.get(f"/api/v1/tickets/{ticket_id}", headers={"X-API-Key": key}).json
        assert ticket["status"] == "resolved" and ticket["sla_paused"] is False
        assert ticket["sla_paused_seconds"] >= 3
        assert ticket["incident"]["status"] == "resolved"
    last = client.get(f"/api/v1/tickets/{filed[0]}/messages", headers={"X-API-Key": affected[0]})
    assert "Reply here if anything is still pending." in last.json["items"][-1]["body"]
    for key, ticket_id in zip(unaffected, others, strict=True):
        ticket = client.get(f"/api/v1/tickets/{ticket_id}", headers={"X-API-Key": key}).json
        assert ticket["status"] == "open"

    # A partner whose trouble goes on reopens its own ticket; the others stay resolved.
    reopened = client.post(
        f"/api/v1/tickets/{filed[0]}/reopen", json={}, headers={"X-API-Key": affected[0]}
    )
    assert reopened.status_code == 200 and reopened.json["status"] == "open"
    assert (
        client.get(f"/api/v1/tickets/{filed[1]}", headers={"X-API-Key": affected[1]}).json["status"]
        == "resolved"
    )


def _staff_key(app, email: str) -> str:
    from ticketing.auth import issue_key

    staff = db.session.execute(db.select(Staff).where(Staff.email == email)).scalar_one()
    _, raw = issue_key(staff=staff)
    db.session.commit()
    return raw


def test_staff_link_unlink_and_bulk_actions(outage):
    app, keys, incident_id = outage
    client = app.test_client()
    staff = {"X-API-Key": keys.staff}
    a = _file(client, keys.partners[0], "Question about our invoice", "Could you resend it?")
    b = _file(client, keys.partners[1], "Invoice address", "Please change our invoice address.")
    assert a["incident"] is None and b["incident"] is None

    linked = client.put(
        f"/api/v1/staff/tickets/{a['id']}/incident", json={"incident_id": incident_id},
        headers=staff,
    )  # fmt: skip
    assert linked.status_code == 200 and linked.json["incident_id"] == incident_id
    assert linked.json["sla_paused"] is True
    unlinked = client.delete(f"/api/v1/staff/tickets/{a['id']}/incident", headers=staff)
    assert unlinked.json["incident_id"] is None and unlinked.json["sla_paused"] is False
    trail = client.get(f"/api/v1/staff/tickets/{a['id']}/audit", headers=staff).json["items"]
    assert [e["reason"] for e in trail if e["field"] == "incident_id"] == [
        "linked by staff",
        "unlinked by staff",
    ]
    missing = client.put(
        f"/api/v1/staff/tickets/{a['id']}/incident", json={"incident_id": 999}, headers=staff
    )
    assert missing.status_code == 404

    # Bulk: the same rules as one at a time, per ticket.
    bulk = client.post(
        "/api/v1/staff/tickets/bulk",
        json={"ticket_ids": [a["id"], b["id"], 999999], "action": "link", "value": incident_id},
        headers=staff,
    )
    assert [r["result"] for r in bulk.json["items"]] == ["changed", "changed", "not_found"]
    assign = client.post(
        "/api/v1/staff/tickets/bulk",
        json={"ticket_ids": [a["id"], b["id"]], "action": "assign", "value": keys.staff_id},
        headers=staff,
    )
    assert [r["result"] for r in assign.json["items"]] == ["changed", "changed"]
    client.post(f"/api/v1/staff/tickets/{b['id']}/status", json={"status": "closed"}, headers=staff)
    resolve = client.post(
        "/api/v1/staff/tickets/bulk",
        json={"ticket_ids": [a["id"], b["id"]], "action": "status", "value": "resolved"},
        headers=staff,
    )
    results = resolve.json["items"]
    assert [r["result"] for r in results] == ["changed", "refused"]
    assert results[1]["error"]["code"] == "invalid_transition"
    # An agent may not assign a colleague, in bulk either.
    colleague = client.post(
        "/api/v1/staff/tickets/bulk",
        json={"ticket_ids": [a["id"]], "action": "assign", "value": keys.staff_id + 1000},
        headers=staff,
    )
    assert colleague.json["items"][0]["result"] == "refused"
    assert colleague.json["items"][0]["error"]["code"] == "forbidden"
    for body in (
        {"ticket_ids": [], "action": "assign", "value": None},
        {"ticket_ids": [a["id"]], "action": "explode"},
        {"ticket_ids": [a["id"]], "action": "priority", "value": "urgent"},
        {"ticket_ids": [a["id"]], "action": "link", "value": "twelve"},
        {"ticket_ids": ["x"], "action": "unlink"},
    ):
        response = client.post("/api/v1/staff/tickets/bulk", json=body, headers=staff)
        assert response.status_code == 422, (body, response.json)
    partner = client.post(
        "/api/v1/staff/tickets/bulk",
        json={"ticket_ids": [a["id"]], "action": "unlink"},
        headers={"X-API-Key": keys.partners[0]},
    )
    assert partner.status_code == 403


def test_a_weak_match_is_suggested_to_staff(outage):
    app, keys, incident_id = outage
    client = app.test_client()
    staff = {"X-API-Key": keys.staff}
    weak = _file(
        client,
        keys.partners[2],
        "Our transactions this morning",
        "Please look at our transfers from this morning, tx_5501 and tx_5502.",
    )
    assert weak["incident"] is None
    listed = client.get(f"/api/v1/staff/incidents/{incident_id}/suggestions", headers=staff).json
    [suggestion] = listed["items"]
    assert suggestion["ticket"]["id"] == weak["id"] and 0.3 <= suggestion["score"] < 0.7
    dismissed = client.delete(
        f"/api/v1/staff/incidents/{incident_id}/suggestions/{weak['id']}", headers=staff
    )
    assert dismissed.status_code == 204
    assert (
        client.get(f"/api/v1/staff/incidents/{incident_id}/suggestions", headers=staff).json[
            "items"
        ]
        == []
    )


def test_tickets_filed_before_the_incident_was_published_are_linked_when_it_is(outage):
    """The first partners report an outage before staff publish its incident: publishing
    scores the open tickets filed from an hour before it was opened, as if filed now."""
    from datetime import timedelta

    from ticketing.models import Ticket

    app, keys, transactions = outage
    client = app.test_client()
    staff = {"X-API-Key": keys.staff}
    with app.app_context():
        # The fixture's incident is over: the draft is the only one these tickets could match.
        incidents.resolve(
            db.session.get(Incident, transactions), "Settled.", ("staff", keys.staff_id)
        )
        draft = incidents.open_incident(
            app.extensions["status"].settings,
            "Energy purchases refused",
            ["energy-pool"],
            "major",
            "Purchases from the energy pool fail; we are investigating.",
            ("staff", keys.staff_id),
        )
        db.session.commit()
        draft_id = draft.id
    early = _file(
        client, keys.partners[3], "Energy purchase refused",
        "Since 10:05 every energy purchase from the pool is refused: insufficient capacity.",
    )  # fmt: skip
    unrelated = _file(
        client, keys.partners[4], "Invoice for November", "Could you send the invoice again?"
    )
    older = _file(
        client, keys.partners[5], "Energy purchase refused",
        "Every energy purchase from the pool is refused: insufficient capacity.",
    )  # fmt: skip
    # A draft is not public: nothing is linked to it yet.
    assert early["incident"] is None and early["sla_paused"] is False
    with app.app_context():
        db.session.get(Ticket, older["id"]).created_at -= timedelta(hours=2)
        db.session.commit()
        incidents.publish(db.session.get(Incident, draft_id), ("staff", keys.staff_id))
        db.session.commit()

    def seen(ticket):
        return client.get(f"/api/v1/tickets/{ticket['id']}", headers={
            "X-API-Key": keys.partners[ticket["partner_index"]]}).json  # fmt: skip

    early["partner_index"], unrelated["partner_index"], older["partner_index"] = 3, 4, 5
    now_early = seen(early)
    assert now_early["incident"]["id"] == draft_id and now_early["sla_paused"] is True
    assert seen(unrelated)["incident"] is None
    assert seen(older)["incident"] is None  # filed more than an hour before it was opened
    trail = client.get(f"/api/v1/staff/tickets/{early['id']}/audit", headers=staff).json["items"]
    [entry] = [e for e in trail if e["field"] == "incident_id"]
    assert entry["actor_kind"] == "system"
    assert entry["reason"].startswith("filed before the incident was published, matches it")
