"""Bulk work and incidents in the console, through Flask's test client, on SQLite and
PostgreSQL: the queue's bulk actions (assign, status, priority, link, unlink) with
the single-ticket rules and their refusals explained; the incident page's linked
and suggested tickets, "send the latest update to every linked ticket", the update
form's reply and the resolve form's settings; a ticket's incident and SLA pause."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.harness.assertions import row_counts
from tests.harness.console import signed_in
from ticketing.db import db
from ticketing.models import Message, Ticket
from ticketing.status import incident_tickets, incidents, linking
from ticketing.status.models import Incident, StatusAudit


@pytest.fixture
def app_config(app_config):
    app_config["TICKETING"]["console"] = {"page_size": 25}
    return app_config


def _tickets(make, partner, n: int, title: str = "Question about our invoice") -> list[int]:
    return [make.ticket(partner, title=f"{title} {i}")["id"] for i in range(n)]


def _incident(app, title: str = "Transactions stuck in pending", publish: bool = True) -> int:
    with app.app_context():
        incident = incidents.open_incident(
            app.extensions["status"].settings,
            title,
            ["transactions"],
            "major",
            "We are looking into transactions that stay pending.",
            ("system", None),
        )
        if publish:
            incidents.publish(incident, ("system", None))
        db.session.commit()
        return incident.id


def _ticket(app, ticket_id: int) -> Ticket:
    with app.app_context():
        ticket = db.session.get(Ticket, ticket_id)
        db.session.expunge(ticket)
        return ticket


def _bulk(client, token: str, ids, action: str, query: str = "", **fields):
    data = {"csrf_token": token, "ticket": [str(i) for i in ids], "action": action, **fields}
    return client.post("/console/bulk" + query, data=data)


def _notice(page: str) -> str:
    """The page's last notice (flashes not shown yet come first)."""
    found = re.findall(
        r'<p class="notice notice-\w+" role="(?:status|alert)"[^>]*>([^<]*)</p>', page
    )
    assert found, page[:2000]
    return found[-1].replace("&#39;", "'")


# ------------------------------------------------------------------ the queue


def test_the_queue_offers_bulk_actions_and_the_incident_filter(console_app, client, make):
    acme, agent = make.partner("Acme"), make.staff("agent")
    ids = _tickets(make, acme, 2)
    incident_id = _incident(console_app)
    signed_in(client, agent)
    page = client.get("/console/").text
    assert 'id="bulk-form"' in page and 'id="select-all"' in page
    for ticket_id in ids:
        assert f'name="ticket" value="{ticket_id}"' in page
        assert f'<label for="pick-{ticket_id}" class="sr-only">' in page
    # An agent assigns only itself (or nobody); the open incident is a link target.
    assert '<option value="me">Me</option>' in page
    assert re.search(r'id="bulk-assignee".*?</select>', page, re.S).group(0).count("<option") == 2
    assert f'<option value="{incident_id}">#{incident_id} Transactions' in page
    assert 'name="incident_id"' in page  # the filter


def test_an_admin_assigns_sets_status_and_priority_in_bulk(console_app, client, make):
    acme, admin, agent = make.partner("Acme"), make.staff("admin"), make.staff("agent", "Sam")
    ids = _tickets(make, acme, 4)
    token = signed_in(client, admin)

    assigned = _bulk(client, token, ids, "assign", "?priority=medium&status=any", assignee=agent.id)
    assert assigned.status_code == 303
    back = urlsplit(assigned.location)
    assert back.path == "/console/"
    assert parse_qs(back.query) == {"priority": ["medium"], "status": ["any"]}  # filters kept
    page = client.get(assigned.location).text
    assert _notice(page) == "4 tickets changed."
    assert {_ticket(console_app, i).assignee_id for i in ids} == {agent.id}

    # Once more: nothing to change, and it says so.
    again = _bulk(client, token, ids, "assign", assignee=str(agent.id))
    assert _notice(client.get(again.location).text) == "0 tickets changed, 4 already so."

    # One ticket was closed meanwhile: it is refused, the others resolve.
    closed = client.post(
        f"/console/tickets/{ids[0]}/status", data={"csrf_token": token, "status": "closed"}
    )
    assert closed.status_code == 303
    assert _notice(client.get(closed.location).text) == "Status changed to closed."
    resolved = _bulk(client, token, ids, "status", status="resolved")
    notice = _notice(client.get(resolved.location).text)
    assert (
        notice
        == f"3 tickets changed, 1 refused: #{ids[0]}: a ticket cannot go from closed to resolved."
    )
    assert [_ticket(console_app, i).status for i in ids] == ["closed"] + ["resolved"] * 3

    prio = _bulk(client, token, ids[1:], "priority", priority="high")
    assert _notice(client.get(prio.location).text) == "3 tickets changed."
    assert {_ticket(console_app, i).priority for i in ids[1:]} == {"high"}
    unassigned = _bulk(client, token, ids, "assign", assignee="none")
    assert _notice(client.get(unassigned.location).text) == "4 tickets changed."
    assert {_ticket(console_app, i).assignee_id for i in ids} == {None}


def test_an_agent_cannot_assign_a_colleague_in_bulk(console_app, client, make):
    acme, agent, colleague = make.partner("Acme"), make.staff("agent"), make.staff("agent")
    ids = _tickets(make, acme, 3)
    token = signed_in(client, agent)
    refused = _bulk(client, token, ids, "assign", assignee=str(colleague.id))
    notice = _notice(client.get(refused.location).text)
    assert notice.startswith("0 tickets changed, 3 refused: ")
    assert notice.count("agents may only assign tickets to themselves") == 3
    assert {_ticket(console_app, i).assignee_id for i in ids} == {None}

    mine = _bulk(client, token, ids[:2], "assign", assignee="me")
    assert _notice(client.get(mine.location).text) == "2 tickets changed."
    # Letting go: its own tickets yes, a colleague's no.
    with console_app.app_context():
        db.session.get(Ticket, ids[2]).assignee_id = colleague.id
        db.session.commit()
    let_go = _bulk(client, token, ids, "assign", assignee="none")
    assert _notice(client.get(let_go.location).text) == (
        f"2 tickets changed, 1 refused: #{ids[2]}: agents may only unassign their own tickets."
    )
    assert [_ticket(console_app, i).assignee_id for i in ids] == [None, None, colleague.id]


def test_select_all_takes_the_tickets_of_the_page(console_app, client, make):
    acme, agent = make.partner("Acme"), make.staff("agent")
    _tickets(make, acme, 3)
    token = signed_in(client, agent)
    page = client.get("/console/?priority=medium").text
    on_page = re.findall(r'name="page_ticket" value="(\d+)"', page)
    assert len(on_page) == 3
    response = client.post(
        "/console/bulk?priority=medium",
        data={
            "csrf_token": token,
            "all_on_page": "1",
            "page_ticket": on_page,
            "action": "assign",
            "assignee": "me",
        },  # fmt: skip
    )
    assert _notice(client.get(response.location).text) == "3 tickets changed."


def test_refused_bulk_requests_say_why_and_change_nothing(console_app, client, make):
    acme, agent, admin = make.partner("Acme"), make.staff("agent"), make.staff("admin")
    ids = _tickets(make, acme, 2)
    token = signed_in(client, agent)
    before = row_counts(console_app)
    cases = [
        ({"action": "assign", "assignee": "me"}, [], "select at least one ticket"),
        ({"action": "explode"}, ids, "Choose what to do with the selected tickets"),
        ({}, ids, "Choose what to do"),
        ({"action": "status", "status": "gone"}, ids, "Must be one of: open, in_progress"),
        ({"action": "status"}, ids, "Choose the status"),
        ({"action": "priority", "priority": "urgent!"}, ids, "Must be one of: low"),
        ({"action": "assign", "assignee": "someone"}, ids, "Choose who to assign"),
        ({"action": "assign", "assignee": "0"}, ids, "Choose who to assign"),
        ({"action": "link", "incident": "x"}, ids, "Choose the incident"),
        ({"action": "link", "incident": "99999"}, ids, "no such incident"),
        ({"action": "assign", "assignee": "me"}, ["abc"], "is not a ticket number"),
        ({"action": "assign", "assignee": "me"}, ["99999999999"], "is not a ticket number"),
    ]
    for fields, selected, reason in cases:
        response = _bulk(client, token, selected, fields.pop("action", ""), **fields)
        assert 400 <= response.status_code < 500, (fields, response.status_code)
        assert 'role="alert"' in response.text and reason in response.text, (fields, reason)
        assert 'id="bulk-form"' in response.text  # the queue, to try again
    # Without the CSRF token, or with another session's: refused, nothing changes.
    other = console_app.test_client()
    other_token = signed_in(other, admin)
    for bad in ({}, {"csrf_token": other_token}, {"csrf_token": "x"}):
        forged = client.post(
            "/console/bulk",
            data={
                "ticket": [str(ids[1])],
                "action": "assign",
                "assignee": "me",
                **bad,
            },  # fmt: skip
        )
        assert forged.status_code == 400 and "security token" in forged.text
    assert row_counts(console_app) == before
    assert _ticket(console_app, ids[1]).assignee_id is None
    # A ticket that does not exist is counted; the others change.
    partly = _bulk(client, token, [ids[0], 999999], "priority", priority="low")
    assert _notice(client.get(partly.location).text) == "1 ticket changed, 1 not found (#999999)."
    # A bad filter in the query string is a page that says why.
    bad_filter = _bulk(client, token, ids, "assign", "?overdue=maybe", assignee="me")
    assert bad_filter.status_code == 400 and "filters are not valid" in bad_filter.text


def test_link_and_unlink_in_bulk_and_filter_by_incident(console_app, client, make):
    acme, agent = make.partner("Acme"), make.staff("agent")
    ids = _tickets(make, acme, 4)
    incident_id = _incident(console_app)
    draft_id = _incident(console_app, "Energy pool slow", publish=False)
    token = signed_in(client, agent)
    page = client.get("/console/").text
    assert f'<option value="{draft_id}">#{draft_id} Energy pool slow (draft)</option>' in page

    linked = _bulk(client, token, ids[:3], "link", incident=str(incident_id))
    assert _notice(client.get(linked.location).text) == "3 tickets changed."
    for ticket_id in ids[:3]:
        ticket = _ticket(console_app, ticket_id)
        assert ticket.incident_id == incident_id and ticket.sla_paused_at is not None
    filtered = client.get(f"/console/?incident_id={incident_id}").text
    rows = re.findall(r'<tr class="[^"]*" data-ticket-id="(\d+)">(.*?)</tr>', filtered, re.S)
    assert sorted(int(i) for i, _ in rows) == ids[:3]
    for _, row in rows:
        assert f"incident #{incident_id}</a>" in row and "SLA paused" in row
    assert f'<option value="{incident_id}" selected>' in filtered

    unlinked = _bulk(
        client, token, ids, "unlink", f"?incident_id={incident_id}", incident=str(incident_id)
    )
    assert urlsplit(unlinked.location).query == f"incident_id={incident_id}"
    assert _notice(client.get(unlinked.location).text) == "3 tickets changed, 1 already so."
    for ticket_id in ids:
        ticket = _ticket(console_app, ticket_id)
        assert ticket.incident_id is None and ticket.sla_paused_at is None
    assert (
        "No tickets match these filters." in client.get(f"/console/?incident_id={incident_id}").text
    )


# ------------------------------------------------------------------ the incident page


def _suggest(app, ticket_id: int, incident_id: int, reason: str = "keywords: pending") -> None:
    with app.app_context():
        ticket, incident = db.session.get(Ticket, ticket_id), db.session.get(Incident, incident_id)
        incident_tickets.suggest(ticket, incident, linking.Match(incident_id, 0.31, reason))
        db.session.commit()


def test_the_incident_page_lists_links_and_answers_its_tickets(console_app, client, make):
    acme, borealis, agent = make.partner("Acme"), make.partner("Borealis"), make.staff("agent")
    ids = _tickets(make, acme, 3) + _tickets(make, borealis, 2)
    incident_id = _incident(console_app)
    token = signed_in(client, agent)
    _bulk(client, token, ids[:3], "link", incident=str(incident_id))
    _suggest(console_app, ids[3], incident_id)
    _suggest(console_app, ids[4], incident_id, "category technical")
    path = f"/console/incidents/{incident_id}"

    page = client.get(path).text
    assert "Linked tickets (3)" in page
    assert f'href="/console/?incident_id={incident_id}&amp;status=any"' in page
    assert "Send the latest update to the 3 linked tickets" in page
    suggested = re.search(r'id="suggested-tickets".*?</section>', page, re.S).group(0)
    assert "Suggested tickets (2)" in suggested and "0.31" in suggested
    assert "keywords: pending" in suggested and "category technical" in suggested

    # One suggestion linked, one dismissed, a bad decision explained.
    link = client.post(
        f"{path}/suggestions/{ids[3]}", data={"csrf_token": token, "decision": "link"}
    )
    assert link.status_code == 303
    assert _notice(client.get(path).text) == f"Ticket #{ids[3]} linked."
    odd = client.post(f"{path}/suggestions/{ids[4]}", data={"csrf_token": token, "decision": "x"})
    assert odd.status_code == 422 and 'role="alert"' in odd.text
    dismiss = client.post(
        f"{path}/suggestions/{ids[4]}", data={"csrf_token": token, "decision": "dismiss"}
    )
    assert dismiss.status_code == 303
    page = client.get(path).text
    assert _notice(page) == f"Suggestion #{ids[4]} dismissed." and "Linked tickets (4)" in page
    assert 'id="suggested-tickets"' not in page
    gone = client.post(
        f"{path}/suggestions/{ids[4]}", data={"csrf_token": token, "decision": "dismiss"}
    )
    assert gone.status_code == 404 and "no such suggestion" in gone.text
    with console_app.app_context():
        assert db.session.get(Ticket, ids[4]).incident_id is None

    # The latest update, once to each linked ticket; pressing again sends nothing more.
    sent = client.post(f"{path}/replies", data={"csrf_token": token})
    assert sent.status_code == 303
    assert _notice(client.get(path).text) == "Sent to 4 tickets; 0 had it already; 0 closed."
    again = client.post(f"{path}/replies", data={"csrf_token": token})
    assert again.status_code == 303
    assert _notice(client.get(path).text) == "Sent to 0 tickets; 4 had it already; 0 closed."
    messages = client.get(f"/api/v1/tickets/{ids[0]}/messages", headers=acme.headers).json
    replies = [m for m in messages["items"] if m["sender_type"] == "staff"]
    assert len(replies) == 1
    assert replies[0]["body"].startswith("Investigating: Transactions stuck in pending")
    unlinked = client.get(f"/api/v1/tickets/{ids[4]}/messages", headers=borealis.headers).json
    assert unlinked["items"] == []  # not linked: nothing
    with console_app.app_context():
        actions = [
            a.action
            for a in db.session.execute(
                db.select(StatusAudit).where(StatusAudit.incident_id == incident_id)
            ).scalars()
        ]
    assert actions.count("replied_to_tickets") == 2
    assert client.post(f"{path}/replies", data={}).status_code == 400  # no CSRF token


def test_a_draft_cannot_be_sent_to_its_tickets(console_app, client, make):
    acme, agent = make.partner("Acme"), make.staff("agent")
    ids = _tickets(make, acme, 2)
    draft_id = _incident(console_app, publish=False)
    token = signed_in(client, agent)
    _bulk(client, token, ids, "link", incident=str(draft_id))
    path = f"/console/incidents/{draft_id}"
    page = client.get(path).text
    assert re.search(r'id="reply-all" disabled', page) and "Publish the incident first" in page
    before = row_counts(console_app)
    refused = client.post(f"{path}/replies", data={"csrf_token": token})
    assert refused.status_code == 409 and "publish the incident" in refused.text
    assert row_counts(console_app) == before


def test_an_update_also_replies_and_resolving_resolves_the_tickets(console_app, client, make):
    acme, agent = make.partner("Acme"), make.staff("agent")
    ids = _tickets(make, acme, 3)
    incident_id = _incident(console_app)
    token = signed_in(client, agent)
    _bulk(client, token, ids, "link", incident=str(incident_id))
    path = f"/console/incidents/{incident_id}"
    page = client.get(path).text
    assert 'name="reply_to_tickets"' in page and 'id="resolve-tickets" checked' in page

    update = client.post(
        f"{path}/updates",
        data={
            "csrf_token": token,
            "status": "identified",
            "body": "A stuck queue; draining it.",
            "reply_to_tickets": "1",
        },  # fmt: skip
    )
    assert update.status_code == 303
    assert _notice(client.get(path).text) == (
        "Update posted. Sent to 3 tickets; 0 had it already; 0 closed."
    )
    # Without the box, an update stays on the status page.
    quiet = client.post(
        f"{path}/updates", data={"csrf_token": token, "status": "monitoring", "body": "Watching."}
    )
    assert quiet.status_code == 303 and _notice(client.get(path).text) == "Update posted."

    # A bad closing message is refused before anything resolves.
    too_long = client.post(
        f"{path}/resolve",
        data={"csrf_token": token, "resolve_tickets": "1", "closing_message": "x" * 5001},
    )
    assert too_long.status_code == 422 and "closing_message" in too_long.text
    with console_app.app_context():
        assert db.session.get(Incident, incident_id).resolved_at is None

    resolved = client.post(
        f"{path}/resolve",
        data={
            "csrf_token": token,
            "body": "Fixed.",
            "resolve_tickets": "1",
            "closing_message": "Reopen this ticket if anything still looks wrong.",
        },  # fmt: skip
    )
    assert resolved.status_code == 303
    assert _notice(client.get(path).text) == "Resolved, and 3 linked tickets with it."
    with console_app.app_context():
        incident = db.session.get(Incident, incident_id)
        assert incident.closing_message == "Reopen this ticket if anything still looks wrong."
        for ticket_id in ids:
            ticket = db.session.get(Ticket, ticket_id)
            assert ticket.status == "resolved" and ticket.sla_paused_at is None
            bodies = db.session.execute(
                db.select(Message.body).where(Message.ticket_id == ticket_id)
            ).scalars().all()  # fmt: skip
            assert sum("Identified: Transactions stuck" in b for b in bodies) == 1
            assert sum("Reopen this ticket if anything" in b for b in bodies) == 1
        audit = db.session.execute(
            db.select(StatusAudit.detail).where(
                StatusAudit.incident_id == incident_id, StatusAudit.action == "tickets_settings"
            )
        ).scalars().all()  # fmt: skip
        assert audit == ["closing message"]


def test_resolving_without_the_box_leaves_the_tickets_open(console_app, client, make):
    acme, agent = make.partner("Acme"), make.staff("agent")
    ids = _tickets(make, acme, 2)
    incident_id = _incident(console_app)
    token = signed_in(client, agent)
    _bulk(client, token, ids, "link", incident=str(incident_id))
    path = f"/console/incidents/{incident_id}"
    resolved = client.post(f"{path}/resolve", data={"csrf_token": token, "body": "Fixed."})
    assert resolved.status_code == 303 and _notice(client.get(path).text) == "Resolved."
    with console_app.app_context():
        assert db.session.get(Incident, incident_id).resolve_tickets is False
        for ticket_id in ids:
            ticket = db.session.get(Ticket, ticket_id)
            assert ticket.status == "open" and ticket.sla_paused_at is None
    page = client.get(path).text
    assert "Linked tickets (2)" in page and "resolve_tickets=off" in page


# ------------------------------------------------------------------ a ticket's page


def test_a_ticket_shows_its_incident_and_links_unlinks_and_dismisses(console_app, client, make):
    acme, agent = make.partner("Acme"), make.staff("agent")
    ticket_id, other_id = _tickets(make, acme, 2)
    incident_id = _incident(console_app)
    token = signed_in(client, agent)
    path = f"/console/tickets/{ticket_id}"
    page = client.get(path).text
    assert 'id="link-form"' in page and f'<option value="{incident_id}">#{incident_id}' in page

    linked = client.post(f"{path}/incident", data={"csrf_token": token, "incident": incident_id})
    assert linked.status_code == 303
    page = client.get(path).text
    assert f"Linked to incident #{incident_id}." in _notice(page)
    note = re.search(r'<p class="incident-note" id="incident-note">(.*?)</p>', page, re.S).group(1)
    assert f"#{incident_id}: Transactions stuck in pending</a> (investigating)" in note
    paused = re.search(r'id="sla-paused">(.*?)</p>', page, re.S).group(1)
    assert re.search(
        rf'SLA paused since <time datetime="[^"]+Z">\d{{4}}-\d\d-\d\d \d\d:\d\d UTC</time> '
        rf"\(incident #{incident_id} open\)",
        paused,
    )
    assert "clock paused" in page and 'id="unlink"' in page

    unlinked = client.post(f"{path}/incident/unlink", data={"csrf_token": token})
    assert unlinked.status_code == 303
    page = client.get(path).text
    assert "its SLA clock runs again" in _notice(page) and 'id="incident-note"' not in page
    again = client.post(f"{path}/incident/unlink", data={"csrf_token": token})
    assert again.status_code == 409 and "not linked" in again.text

    # A suggestion: shown, dismissed; then linked from another ticket's suggestion.
    _suggest(console_app, ticket_id, incident_id)
    page = client.get(path).text
    assert 'id="incident-suggestion"' in page and "keywords: pending" in page
    dismissed = client.post(
        f"{path}/incident/dismiss", data={"csrf_token": token, "incident": incident_id}
    )
    assert dismissed.status_code == 303
    assert 'id="incident-suggestion"' not in client.get(path).text
    _suggest(console_app, other_id, incident_id)
    other = f"/console/tickets/{other_id}"
    assert 'id="suggestion-link"' in client.get(other).text
    took = client.post(f"{other}/incident", data={"csrf_token": token, "incident": incident_id})
    assert took.status_code == 303
    assert _ticket(console_app, other_id).incident_id == incident_id

    for data, status, reason in (
        ({}, 422, "Choose an incident"),
        ({"incident": "abc"}, 422, "Not an incident number"),
        ({"incident": "0"}, 422, "incident"),
        ({"incident": "99999"}, 404, "No such incident"),
    ):
        refused = client.post(f"{path}/incident", data={"csrf_token": token, **data})
        assert refused.status_code == status and reason in refused.text, (data, refused.text[:300])
        assert 'role="alert"' in refused.text
    missing = client.post(
        f"{path}/incident/dismiss", data={"csrf_token": token, "incident": incident_id}
    )
    assert missing.status_code == 404
    forged = client.post(f"{path}/incident", data={"incident": incident_id})
    assert forged.status_code == 400
    assert _ticket(console_app, ticket_id).incident_id is None
