"""Partners only ever reach their own tickets; internal notes never reach partners."""

from __future__ import annotations

import io
import re

from tests.harness.assertions import assert_error, row_counts
from ticketing import signals

MISSING = 2_000_000


def _partner_ticket_routes(app) -> set[tuple[str, str]]:
    return {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("partner.") and "ticket_id" in rule.arguments
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def _call(client, party, rule: str, method: str, ticket_id: int, attachment_id: int):
    url = re.sub(r"<id:ticket_id>", str(ticket_id), rule)
    url = re.sub(r"<id:attachment_id>", str(attachment_id), url)
    if method == "GET":
        return client.get(url, headers=party.headers)
    if url.endswith("/messages"):
        return client.post(url, headers=party.headers, json={"body": "let me in"})
    if url.endswith("/attachments"):
        return client.post(
            url,
            headers=party.headers,
            content_type="multipart/form-data",
            data={"file": (io.BytesIO(b"x"), "x.txt", "text/plain")},
        )
    return client.open(url, method=method, headers=party.headers)


def _headers(response) -> dict[str, str]:
    """Headers that could tell a foreign ticket from a missing one (rate-limit counters aside)."""
    return {k: v for k, v in response.headers.items() if not k.lower().startswith("x-ratelimit")}


def test_other_partners_ticket_is_404_on_every_route(app, client, make):
    acme, rival = make.partner("Acme"), make.partner("Rival")
    theirs = make.ticket(acme, title="Private matter")
    upload = make.upload(acme, theirs["id"])
    assert upload.status_code == 201
    mine = make.ticket(rival, title="My own ticket")
    denied = []

    def on_denied(sender, actor, resource, resource_id):
        denied.append((actor.id, resource, resource_id))

    routes = _partner_ticket_routes(app)
    assert len(routes) == 8, routes  # a new route must be added to this check
    before = row_counts(app)
    checked = set()
    with signals.access_denied.connected_to(on_denied, app):
        for rule, method in sorted(routes):
            if "attachment_id" in rule:
                # Their attachment through their ticket, and through my own ticket.
                pairs = [
                    (
                        _call(client, rival, rule, method, theirs["id"], upload.json["id"]),
                        _call(client, rival, rule, method, MISSING, upload.json["id"]),
                    ),
                    (
                        _call(client, rival, rule, method, mine["id"], upload.json["id"]),
                        _call(client, rival, rule, method, mine["id"], MISSING),
                    ),
                ]
            else:
                pairs = [
                    (
                        _call(client, rival, rule, method, theirs["id"], 0),
                        _call(client, rival, rule, method, MISSING, 0),
                    )
                ]
            for answer, absent in pairs:
                error = assert_error(answer, 404, "not_found")
                assert answer.get_data() == absent.get_data(), (rule, method)
                assert _headers(answer) == _headers(absent), (rule, method)
                assert error == absent.get_json()["error"]
            checked.add((rule, method))
    assert checked == routes
    assert row_counts(app) == before  # nothing written by the refused requests
    assert len(denied) == 9
    assert {d[0] for d in denied} == {rival.id}
    assert ("attachment", upload.json["id"]) in {d[1:] for d in denied}
    assert ("ticket", theirs["id"]) in {d[1:] for d in denied}

    # ...and their ticket is in none of the rival's lists.
    listed = client.get("/api/v1/tickets", headers=rival.headers).json["items"]
    assert [t["id"] for t in listed] == [mine["id"]]


def test_internal_notes_and_files_never_reach_partners(app, client, make):
    acme = make.partner()
    agent = make.staff()
    ticket = make.ticket(acme)
    tid = ticket["id"]
    client.post(
        f"/api/v1/staff/tickets/{tid}/messages",
        headers=agent.headers,
        json={"body": "INTERNAL: partner is on probation", "internal": True},
    )
    client.post(
        f"/api/v1/staff/tickets/{tid}/messages",
        headers=agent.headers,
        json={"body": "Hello, we are looking into it."},
    )
    internal_file = make.upload(
        agent, tid, b"internal analysis", "analysis.txt", staff=True, internal="true"
    )
    public_file = make.upload(agent, tid, b"public answer", "answer.txt", staff=True)
    assert internal_file.status_code == 201 and internal_file.json["internal"] is True
    assert public_file.status_code == 201 and public_file.json["internal"] is False

    messages = client.get(f"/api/v1/tickets/{tid}/messages", headers=acme.headers)
    assert [m["body"] for m in messages.json["items"]] == ["Hello, we are looking into it."]
    files = client.get(f"/api/v1/tickets/{tid}/attachments", headers=acme.headers).json
    assert [f["filename"] for f in files["items"]] == ["answer.txt"]
    denied = client.get(
        f"/api/v1/tickets/{tid}/attachments/{internal_file.json['id']}", headers=acme.headers
    )
    absent = client.get(f"/api/v1/tickets/{tid}/attachments/{MISSING}", headers=acme.headers)
    assert_error(denied, 404, "not_found")
    assert denied.get_data() == absent.get_data()

    # No partner-facing answer carries the note, not even the ticket or the list.
    for url in (
        f"/api/v1/tickets/{tid}",
        "/api/v1/tickets",
        f"/api/v1/tickets/{tid}/messages",
        f"/api/v1/tickets/{tid}/attachments",
    ):
        body = client.get(url, headers=acme.headers).get_data(as_text=True)
        assert "probation" not in body and "analysis" not in body and '"internal"' not in body

    # Staff see both.
    staff_messages = client.get(f"/api/v1/staff/tickets/{tid}/messages", headers=agent.headers)
    assert [m["internal"] for m in staff_messages.json["items"]] == [True, False]
    staff_files = client.get(f"/api/v1/staff/tickets/{tid}/attachments", headers=agent.headers)
    assert len(staff_files.json["items"]) == 2

    # Partners cannot write internal notes.
    assert_error(
        client.post(
            f"/api/v1/tickets/{tid}/messages",
            headers=acme.headers,
            json={"body": "x", "internal": True},
        ),
        422,
        "validation_error",
    )


def test_keys_only_reach_their_own_api(client, make):
    acme = make.partner()
    agent = make.staff()
    ticket = make.ticket(acme)
    assert_error(client.get("/api/v1/staff/tickets", headers=acme.headers), 403, "forbidden")
    assert_error(
        client.get(f"/api/v1/staff/tickets/{ticket['id']}", headers=acme.headers), 403, "forbidden"
    )
    assert_error(client.get("/api/v1/tickets", headers=agent.headers), 403, "forbidden")
    assert_error(
        client.post(
            "/api/v1/tickets", headers=agent.headers, json={"title": "x", "description": "y"}
        ),
        403,
        "forbidden",
    )


def test_agents_assign_only_themselves_admins_anyone(client, make):
    acme = make.partner()
    agent, other, admin = make.staff("agent"), make.staff("agent"), make.staff("admin")
    tid = make.ticket(acme)["id"]
    url = f"/api/v1/staff/tickets/{tid}/assign"
    assert_error(
        client.post(url, headers=agent.headers, json={"assignee_id": other.id}), 403, "forbidden"
    )
    assert (
        client.post(url, headers=admin.headers, json={"assignee_id": other.id}).json["assignee_id"]
        == other.id
    )
    assert_error(
        client.post(url, headers=agent.headers, json={"assignee_id": None}), 403, "forbidden"
    )
    assert (
        client.post(url, headers=other.headers, json={"assignee_id": None}).json["assignee_id"]
        is None
    )
    assert (
        client.post(url, headers=agent.headers, json={"assignee_id": agent.id}).json["assignee_id"]
        == agent.id
    )


def test_a_partner_key_is_refused_on_every_staff_route(app, client, make):
    """Every route of the staff API, the incident and bulk routes included (found in the
    URL map, so a new one is covered too), answers a partner key with 403 before anything
    is read or changed."""
    acme = make.partner()
    ticket = make.ticket(acme)
    routes = {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/staff/")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert {
        ("/api/v1/staff/tickets/bulk", "POST"),
        ("/api/v1/staff/tickets/<id:ticket_id>/incident", "PUT"),
        ("/api/v1/staff/incidents/<id:incident_id>/replies", "POST"),
        ("/api/v1/staff/incidents/<id:incident_id>/suggestions", "GET"),
    } <= routes, sorted(routes)
    for rule, method in sorted(routes):
        url = re.sub(r"<[^>]*:?[a-z_]+>", str(ticket["id"]), rule)
        response = client.open(url, method=method, headers=acme.headers, json={})
        assert_error(response, 403, "forbidden")
