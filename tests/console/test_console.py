"""The console through Flask's test client, on SQLite and on PostgreSQL: sessions,
CSRF, who may sign in, the queue's order and pages, refusals explained."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.harness.assertions import row_counts
from tests.harness.console import csrf_token, signed_in
from ticketing.db import db
from ticketing.models import ApiKey, Ticket, utcnow
from ticketing.security.events import SecurityEvent


def _cookie(response) -> str:
    return next(
        h for h in response.headers.get_all("Set-Cookie") if h.startswith("partnerwatch_console=")
    )


def test_sign_in_makes_an_httponly_samesite_session_cookie(client, make):
    agent = make.staff("agent")
    token = csrf_token(client)
    response = client.post("/console/login", data={"api_key": agent.key, "csrf_token": token})
    assert response.status_code == 303 and response.location == "/console/"
    cookie = _cookie(response)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain HTTP here
    secret = agent.key.split("_", 2)[2]  # pw_<prefix>_<secret>; the secret may hold "_"
    assert agent.key not in cookie and secret not in cookie
    assert client.get("/console/").status_code == 200
    # The session is the console's only: the API still wants a key.
    assert client.get("/api/v1/staff/tickets").status_code == 401


def test_over_https_the_cookie_is_secure(console_app, make):
    agent = make.staff("agent")
    client = console_app.test_client()
    page = client.get("/console/login", base_url="https://support.example")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    response = client.post(
        "/console/login",
        data={"api_key": agent.key, "csrf_token": token},
        base_url="https://support.example",
        headers={"Referer": "https://support.example/console/login"},
    )
    assert response.status_code == 303
    assert "Secure" in _cookie(response)


def test_partner_and_bad_keys_cannot_sign_in(console_app, client, make):
    acme = make.partner("Acme")
    token = csrf_token(client)
    refused = client.post("/console/login", data={"api_key": acme.key, "csrf_token": token})
    assert refused.status_code == 403 and "partner API key" in refused.text
    bad = client.post(
        "/console/login", data={"api_key": "pw_0123456789ab_" + "x" * 43, "csrf_token": token}
    )
    assert bad.status_code == 401
    assert client.get("/console/").status_code == 302
    with console_app.app_context():
        failed = (
            db.session.execute(
                db.select(SecurityEvent.count).where(SecurityEvent.type == "FAILED_AUTH")
            )
            .scalars()
            .all()
        )
    assert sum(failed) == 1  # the bad key, recorded as on the API


def test_forms_without_the_csrf_token_are_refused_and_change_nothing(console_app, client, make):
    acme, agent = make.partner("Acme"), make.staff("agent")
    ticket = make.ticket(acme)
    signed_in(client, agent)
    before = row_counts(console_app)
    for path, data in (
        (f"/console/tickets/{ticket['id']}/messages", {"body": "hi"}),
        (f"/console/tickets/{ticket['id']}/assign", {"assignee": "me"}),
        (f"/console/tickets/{ticket['id']}/status", {"status": "closed"}),
        (f"/console/tickets/{ticket['id']}/triage", {"priority": "low"}),
        ("/console/logout", {}),
    ):
        response = client.post(path, data=data)
        assert response.status_code == 400, path
        assert "security token" in response.text
    assert row_counts(console_app) == before
    assert client.get("/console/").status_code == 200  # still signed in


def test_a_revoked_key_ends_its_sessions(console_app, client, make):
    agent = make.staff("agent")
    signed_in(client, agent)
    with console_app.app_context():
        key = db.session.execute(db.select(ApiKey).where(ApiKey.staff_id == agent.id)).scalar_one()
        key.revoked_at = utcnow()
        db.session.commit()
    assert client.get("/console/").status_code == 302
    assert client.get("/console/live/queue").status_code == 401


def test_signing_out_ends_the_session(client, make):
    agent = make.staff("agent")
    token = signed_in(client, agent)
    assert client.post("/console/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/console/").status_code == 302


def _age(app, ticket_id: int, minutes: int) -> None:
    with app.app_context():
        ticket = db.session.get(Ticket, ticket_id)
        by = timedelta(minutes=minutes)
        for column in ("created_at", "updated_at", "first_response_due_at", "resolution_due_at"):
            setattr(ticket, column, getattr(ticket, column) - by)
        db.session.commit()


def test_the_queue_sorts_by_sla_due_across_pages(console_app, client, make):
    acme, admin = make.partner("Acme"), make.staff("admin")
    ids = {}
    for title, priority, age in (
        ("low one", "low", 0),
        ("medium old", "medium", 300),
        ("critical new", "critical", 0),
        ("high", "high", 0),
        ("medium overdue", "medium", 600),
    ):
        ids[title] = make.ticket(acme, title=title, priority=priority)["id"]
        _age(console_app, ids[title], age)
    signed_in(client, admin)
    expected = ["medium overdue", "critical new", "high", "medium old", "low one"]

    seen, url = [], "/console/"
    while url:
        page = client.get(url)
        assert page.status_code == 200
        seen += [int(i) for i in re.findall(r'data-ticket-id="(\d+)"', page.text)]
        found = re.search(r'href="([^"]+)" rel="next"', page.text)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert seen == [ids[t] for t in expected]  # page_size 3: two pages, no repeats
    first = client.get("/console/").text
    overdue, due_soon = ids["medium overdue"], ids["critical new"]
    # (A row may also be marked "needs-triage": the titles say little about the category.)
    assert re.search(f'class="row-overdue( needs-triage)?" data-ticket-id="{overdue}"', first)
    assert re.search(f'class="row-due_soon( needs-triage)?" data-ticket-id="{due_soon}"', first)

    # The staff API orders the same way (one implementation: ticketing.desk.queue).
    api = client.get("/api/v1/staff/tickets?order=due&limit=2", headers=admin.headers).json
    rest = client.get(
        f"/api/v1/staff/tickets?order=due&limit=10&cursor={api['next_cursor']}",
        headers=admin.headers,
    ).json
    assert [t["id"] for t in api["items"] + rest["items"]] == [ids[t] for t in expected]
    # A cursor of another order or filter is refused, not misread.
    wrong = client.get(f"/api/v1/staff/tickets?cursor={api['next_cursor']}", headers=admin.headers)
    assert wrong.status_code == 400


def test_queue_filters_and_counts(console_app, client, make):
    acme, rival, agent = make.partner("Acme"), make.partner("Rival"), make.staff("agent")
    a = make.ticket(acme, title="Invoice missing")
    make.ticket(rival, title="API returns 500")
    token = signed_in(client, agent)
    client.post(f"/console/tickets/{a['id']}/assign", data={"assignee": "me", "csrf_token": token})
    mine = client.get("/console/?assignee=me").text
    assert re.findall(r'data-ticket-id="(\d+)"', mine) == [str(a["id"])]
    billing = client.get("/console/?category=billing&status=any").text
    assert re.findall(r'data-ticket-id="(\d+)"', billing) == [str(a["id"])]
    by_partner = client.get(f"/console/?partner={rival.id}").text
    assert str(a["id"]) not in re.findall(r'data-ticket-id="(\d+)"', by_partner)
    assert re.search(r"<strong>2</strong> open", client.get("/console/").text)
    bad = client.get("/console/?status=sleeping")
    assert bad.status_code == 400 and "not valid" in bad.text


def test_refusals_are_explained_and_keep_the_typed_text(console_app, client, make):
    acme, agent, other = make.partner("Acme"), make.staff("agent"), make.staff("agent")
    ticket = make.ticket(acme)
    token = signed_in(client, agent)
    base = f"/console/tickets/{ticket['id']}"
    assert (
        client.post(f"{base}/status", data={"status": "closed", "csrf_token": token}).status_code
        == 303
    )
    page = client.post(f"{base}/status", data={"status": "resolved", "csrf_token": token})
    assert page.status_code == 409
    assert "cannot go from closed to resolved" in page.text and "go to: open" in page.text
    reply = client.post(
        f"{base}/messages", data={"body": "Draft kept", "kind": "reply", "csrf_token": token}
    )
    assert (
        reply.status_code == 409
        and "reopen it" in reply.text
        and ">Draft kept</textarea>" in reply.text
    )
    # Only the transitions the workflow allows are offered.
    assert re.findall(
        r'<option value="(\w+)">',
        client.get(base).text.split('id="status"')[1].split("</select>")[0],
    ) == ["open"]
    someone = client.post(f"{base}/assign", data={"assignee": str(other.id), "csrf_token": token})
    assert someone.status_code == 403 and "only assign tickets to themselves" in someone.text
    blank = client.post(
        f"{base}/messages", data={"body": "  ", "kind": "note", "csrf_token": token}
    )
    assert blank.status_code == 422 and "blank" in blank.text


def test_internal_notes_stay_internal(console_app, client, make):
    acme, agent = make.partner("Acme"), make.staff("agent")
    ticket = make.ticket(acme)
    token = signed_in(client, agent)
    base = f"/console/tickets/{ticket['id']}"
    client.post(
        f"{base}/messages", data={"body": "Public answer", "kind": "reply", "csrf_token": token}
    )
    client.post(
        f"{base}/messages", data={"body": "Staff only", "kind": "note", "csrf_token": token}
    )
    partner_view = client.get(f"/api/v1/tickets/{ticket['id']}/messages", headers=acme.headers)
    assert [m["body"] for m in partner_view.json["items"]] == ["Public answer"]
    staff_page = client.get(base).text
    assert 'class="message internal"' in staff_page and "Staff only" in staff_page
    audit = client.get(f"/api/v1/staff/tickets/{ticket['id']}/audit", headers=agent.headers).json
    assert any(
        e["field"] == "first_response_at" and e["actor_kind"] == "staff" for e in audit["items"]
    )


def test_the_security_page_is_for_admins(console_app, client, make):
    agent, admin = make.staff("agent"), make.staff("admin")
    client.get("/api/v1/tickets?q=%27%20OR%201%3D1%20--")
    signed_in(client, agent)
    assert client.get("/console/security").status_code == 403
    admin_client = console_app.test_client()
    signed_in(admin_client, admin)
    page = admin_client.get("/console/security?type=SUSPICIOUS_PATTERN")
    assert page.status_code == 200 and "SUSPICIOUS_PATTERN" in page.text
    assert admin_client.get("/console/security?type=NOPE").status_code == 400


def test_live_fragments_answer_204_until_something_changes(console_app, client, make):
    acme, agent = make.partner("Acme"), make.staff("agent")
    ticket = make.ticket(acme)
    signed_in(client, agent)
    first = client.get("/console/live/queue").json
    assert set(first["regions"]) == {"status-counts", "queue-table"}
    assert client.get(f"/console/live/queue?v={first['version']}").status_code == 204
    client.post(
        f"/api/v1/tickets/{ticket['id']}/messages", headers=acme.headers, json={"body": "any news?"}
    )
    live = client.get(f"/console/live/tickets/{ticket['id']}").json
    assert "any news?" in live["regions"]["conversation"]["html"]
    assert (
        client.get(f"/console/live/tickets/{ticket['id']}?v={live['version']}").status_code == 204
    )
    assert client.get("/console/live/tickets/999999").status_code == 404


@pytest.mark.parametrize(
    "next_page,expected",
    [
        ("/console/tickets/1", "/console/tickets/1"),
        ("https://evil.example/console/", "/console/"),
        ("//evil.example/console/", "/console/"),
        ("/api/v1/tickets", "/console/"),
    ],
)
def test_sign_in_only_redirects_inside_the_console(client, make, next_page, expected):
    agent = make.staff("agent")
    response = client.post(
        "/console/login",
        data={"api_key": agent.key, "next": next_page, "csrf_token": csrf_token(client)},
    )
    assert response.status_code == 303 and response.location == expected


@pytest.mark.parametrize(
    "sent, who",
    [
        (["none", "me"], "me"),  # the dropdown says Nobody, "Assign to me" pressed
        (["{other}", "me"], "me"),  # the dropdown names someone else, "Assign to me" pressed
        (["{other}"], "other"),  # the dropdown's choice, "Assign" pressed
        (["none"], None),
    ],
)
def test_an_admins_assign_form_does_what_the_pressed_button_says(
    console_app, client, make, sent, who
):
    acme, admin, other = make.partner("Acme"), make.staff("admin"), make.staff("agent")
    ticket = make.ticket(acme)
    token = signed_in(client, admin)
    values = [v.format(other=other.id) for v in sent]
    answer = client.post(
        f"/console/tickets/{ticket['id']}/assign", data={"assignee": values, "csrf_token": token}
    )
    assert answer.status_code == 303
    stored = client.get(f"/api/v1/staff/tickets/{ticket['id']}", headers=admin.headers).json
    expected = {"me": admin.id, "other": other.id, None: None}[who]
    assert stored["assignee_id"] == expected
