"""Full-text ticket search (ticketing/desk/search.py) through the staff and partner APIs,
on SQLite (FTS5) and PostgreSQL (tsvector, GIN)."""

from __future__ import annotations

import itertools

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from tests.harness.app import create_test_app, ticketing_config
from tests.harness.assertions import assert_error
from ticketing.auth import Actor
from ticketing.db import db
from ticketing.desk.search import marked, search_page, snippet, words

STAFF_SEARCH = "/api/v1/staff/tickets/search"
PARTNER_SEARCH = "/api/v1/tickets/search"


def _search(client, path, party, q, **params):
    response = client.get(path, headers=party.headers, query_string={"q": q, **params})
    assert response.status_code == 200, response.get_data(True)
    return response.json


def _ids(page) -> list[int]:
    return [item["ticket"]["id"] for item in page["items"]]


def _marked_words(highlight) -> list[str]:
    return [highlight["text"][start:end] for start, end in highlight["ranges"]]


def _post(client, path, party, body, **extra):
    response = client.post(path, headers=party.headers, json={"body": body, **extra})
    assert response.status_code == 201, response.get_data(True)
    return response.json


@pytest.fixture
def world(client, make):
    """Two partners with tickets, an agent, a public reply and an internal note."""
    acme = make.partner("Acme Energy")
    globex = make.partner("Globex Power")
    agent = make.staff()
    invoice = make.ticket(
        acme,
        title="Invoice missing for March",
        description="Our transaction tx-8f3a-19 was charged twice. Write to ops@acme.io.",
    )
    outage = make.ticket(acme, title="API outage", description="Every POST fails with 503.")
    other = make.ticket(
        globex, title="Invoice question", description="Where is the invoice of tx-77aa-01?"
    )
    _post(client, f"/api/v1/tickets/{outage['id']}/messages", acme, "The gateway logs say timeout.")
    _post(
        client,
        f"/api/v1/staff/tickets/{outage['id']}/messages",
        agent,
        "Escalated to the platform team, ref ZEBRA-42.",
        internal=True,
    )
    return {
        "acme": acme,
        "globex": globex,
        "agent": agent,
        "invoice": invoice,
        "outage": outage,
        "other": other,
    }


def test_staff_find_by_word_id_email_partner_and_note(client, world):
    agent = world["agent"]
    invoice, outage, other = world["invoice"]["id"], world["outage"]["id"], world["other"]["id"]

    # A word: both invoices, the one with the word in its title and description first... of equal
    # weight; each item says where it matched.
    page = _search(client, STAFF_SEARCH, agent, "invoice")
    assert set(_ids(page)) == {invoice, other}
    assert page["next_cursor"] is None
    for item in page["items"]:
        title = next(h for h in item["highlights"] if h["field"] == "title")
        assert _marked_words(title) == ["Invoice"]
        assert title["text"] == item["ticket"]["title"]
        assert title["message_id"] is None and title["internal"] is False

    # A transaction id and an email, as given.
    page = _search(client, STAFF_SEARCH, agent, "tx-8f3a-19")
    assert _ids(page) == [invoice]
    [description] = [h for h in page["items"][0]["highlights"] if h["field"] == "description"]
    assert _marked_words(description) == ["tx-8f3a-19"]
    assert _ids(_search(client, STAFF_SEARCH, agent, "ops@acme.io")) == [invoice]
    assert _ids(_search(client, STAFF_SEARCH, agent, "tx-77aa-01")) == [other]

    # A partner's name finds its tickets.
    page = _search(client, STAFF_SEARCH, agent, "globex")
    assert _ids(page) == [other]
    [partner] = page["items"][0]["highlights"]
    assert partner["field"] == "partner" and _marked_words(partner) == ["Globex"]

    # Messages and internal notes (staff only).
    page = _search(client, STAFF_SEARCH, agent, "timeout")
    assert _ids(page) == [outage]
    [message] = page["items"][0]["highlights"]
    assert message["field"] == "message" and message["internal"] is False
    page = _search(client, STAFF_SEARCH, agent, "zebra-42")
    assert _ids(page) == [outage]
    [note] = page["items"][0]["highlights"]
    assert note["field"] == "message" and note["internal"] is True
    assert _marked_words(note) == ["ZEBRA-42"]

    # Stemming; every word must be somewhere in the ticket (title and a message here).
    assert _ids(_search(client, STAFF_SEARCH, agent, "invoices")) != []
    assert _ids(_search(client, STAFF_SEARCH, agent, "outage timeout")) == [outage]
    assert _ids(_search(client, STAFF_SEARCH, agent, "invoice timeout")) == []


def test_partner_sees_only_its_own_tickets_and_never_internal_notes(client, world):
    acme, globex = world["acme"], world["globex"]
    invoice, outage, other = world["invoice"]["id"], world["outage"]["id"], world["other"]["id"]

    assert _ids(_search(client, PARTNER_SEARCH, acme, "invoice")) == [invoice]
    assert _ids(_search(client, PARTNER_SEARCH, globex, "invoice")) == [other]
    assert _ids(_search(client, PARTNER_SEARCH, globex, "tx-8f3a-19")) == []
    assert _ids(_search(client, PARTNER_SEARCH, acme, "tx-77aa-01")) == []
    # Another partner's name finds nothing of it.
    assert _ids(_search(client, PARTNER_SEARCH, acme, "globex")) == []
    # Column names are words like any other, never a filter a user could set.
    for word in ("note", "note:zebra", "{note}", "body"):
        assert _ids(_search(client, PARTNER_SEARCH, acme, word)) == [], word

    # The internal note neither matches nor shows; the public message does.
    assert _ids(_search(client, PARTNER_SEARCH, acme, "zebra")) == []
    assert _ids(_search(client, PARTNER_SEARCH, acme, "escalated platform")) == []
    page = _search(client, PARTNER_SEARCH, acme, "timeout")
    assert _ids(page) == [outage]
    [message] = page["items"][0]["highlights"]
    assert message["field"] == "message" and "internal" not in message
    assert "ZEBRA" not in str(page) and "Escalated" not in str(page)
    # A word of the note and of a public text: only the public text is shown.
    agent = world["agent"]
    _post(client, f"/api/v1/staff/tickets/{outage}/messages", agent, "Gateway restart planned.")
    page = _search(client, PARTNER_SEARCH, acme, "gateway")
    assert _ids(page) == [outage]
    assert "ZEBRA" not in str(page)
    assert set(page["items"][0]["ticket"]) == set(
        client.get(f"/api/v1/tickets/{outage}", headers=acme.headers).json
    )


def test_index_is_current_after_each_write(client, make, world):
    acme, agent = world["acme"], world["agent"]
    assert _ids(_search(client, STAFF_SEARCH, agent, "quokka")) == []
    ticket = make.ticket(acme, title="Quokka in the server room", description="Really.")
    assert _ids(_search(client, STAFF_SEARCH, agent, "quokka")) == [ticket["id"]]
    _post(client, f"/api/v1/tickets/{ticket['id']}/messages", acme, "Also a wombat.")
    assert _ids(_search(client, PARTNER_SEARCH, acme, "wombat")) == [ticket["id"]]
    _post(client, f"/api/v1/staff/tickets/{ticket['id']}/messages", agent, "Numbat", internal=True)
    assert _ids(_search(client, STAFF_SEARCH, agent, "numbat")) == [ticket["id"]]
    assert _ids(_search(client, PARTNER_SEARCH, acme, "numbat")) == []


def test_a_refused_write_leaves_nothing_in_the_index(app, client, world):
    """The index row is written in the request's transaction: a rolled-back write
    (a reply to a closed ticket) leaves no document behind."""
    acme, agent, invoice = world["acme"], world["agent"], world["invoice"]["id"]
    with app.app_context():
        before = db.session.execute(text("SELECT count(*) FROM ticket_search")).scalar_one()
        db.session.rollback()
    client.post(f"/api/v1/tickets/{invoice}/close", headers=acme.headers)
    response = client.post(
        f"/api/v1/tickets/{invoice}/messages", headers=acme.headers, json={"body": "kiwi"}
    )
    assert_error(response, 409, "ticket_closed")
    assert _ids(_search(client, STAFF_SEARCH, agent, "kiwi")) == []
    with app.app_context():
        after = db.session.execute(text("SELECT count(*) FROM ticket_search")).scalar_one()
        db.session.rollback()
    assert after == before


def test_ranking_and_pages(client, make, world):
    acme, agent = world["acme"], world["agent"]
    in_title = make.ticket(acme, title="Meter reading wrong", description="See attached.")
    in_text = [
        make.ticket(acme, title=f"Question {n}", description="The meter shows nothing.")["id"]
        for n in range(4)
    ]
    page = _search(client, STAFF_SEARCH, agent, "meter", limit=2)
    # The title counts more; then newest first among equals.
    assert _ids(page)[0] == in_title["id"]
    seen = _ids(page)
    while page["next_cursor"]:
        page = _search(client, STAFF_SEARCH, agent, "meter", limit=2, cursor=page["next_cursor"])
        seen += _ids(page)
    assert seen == [in_title["id"], *sorted(in_text, reverse=True)]

    # A cursor is bound to its words and its searcher.
    first = _search(client, STAFF_SEARCH, agent, "meter", limit=2)
    response = client.get(
        STAFF_SEARCH,
        headers=agent.headers,
        query_string={"q": "invoice", "cursor": first["next_cursor"]},
    )
    assert_error(response, 400, "invalid_cursor")
    response = client.get(
        PARTNER_SEARCH,
        headers=acme.headers,
        query_string={"q": "meter", "limit": 2, "cursor": first["next_cursor"]},
    )
    assert_error(response, 400, "invalid_cursor")
    response = client.get(
        STAFF_SEARCH, headers=agent.headers, query_string={"q": "meter", "cursor": "x" * 40}
    )
    assert_error(response, 400, "invalid_cursor")


QUERIES = [
    '"',
    '"unbalanced',
    "AND",
    "OR NOT",
    "NEAR(a b)",
    "title:invoice",
    "invoice*",
    "a:*",
    "(invoice",
    "!!invoice!!",
    "-invoice",
    "'); DROP TABLE tickets; --",
    "ünïcödé",
    "the",
    "<script>alert(1)</script>",
    "a & b | !c",
    "^invoice",
    'in"voice',
    "tx-8f3a-19*",
    "*",
]


def test_query_syntax_never_fails(client, world):
    """What a user types is words, never a query language: no input is a 5xx."""
    agent = world["agent"]
    for q, (path, party) in itertools.product(
        QUERIES, ((STAFF_SEARCH, agent), (PARTNER_SEARCH, world["acme"]))
    ):
        response = client.get(path, headers=party.headers, query_string={"q": q})
        if any(c.isalnum() for c in q):
            assert response.status_code == 200, (q, response.get_data(True))
            assert isinstance(response.json["items"], list)
        else:  # nothing to search for
            assert_error(response, 422, "validation_error")
    assert world["invoice"]["id"] in _ids(_search(client, STAFF_SEARCH, agent, "!!invoice!!"))


def test_bad_queries_are_422(client, world):
    queries = [
        {},
        {"q": ""},
        {"q": "   "},
        {"q": "-- !!"},
        {"q": "x" * 201},
        {"q": "a b c d e f g h i"},
    ]
    for query, (path, party) in itertools.product(
        queries, ((STAFF_SEARCH, world["agent"]), (PARTNER_SEARCH, world["acme"]))
    ):
        response = client.get(path, headers=party.headers, query_string=query)
        error = assert_error(response, 422, "validation_error")
        assert "q" in str(error["details"])


def test_search_needs_a_key_of_the_right_kind(client, world):
    assert_error(client.get(STAFF_SEARCH, query_string={"q": "x"}), 401)
    response = client.get(STAFF_SEARCH, headers=world["acme"].headers, query_string={"q": "x"})
    assert response.status_code in (401, 403)
    response = client.get(PARTNER_SEARCH, headers=world["agent"].headers, query_string={"q": "x"})
    assert response.status_code in (401, 403)


def test_stored_markup_is_plain_text_in_highlights(client, make, world):
    acme, agent = world["acme"], world["agent"]
    ticket = make.ticket(
        acme, title="<img src=x onerror=alert(1)> broken", description="<b>bold</b> claim"
    )
    page = _search(client, STAFF_SEARCH, agent, "onerror")
    assert _ids(page) == [ticket["id"]]
    [title] = [h for h in page["items"][0]["highlights"] if h["field"] == "title"]
    assert title["text"] == "<img src=x onerror=alert(1)> broken"
    assert _marked_words(title) == ["onerror"]


def test_openapi_documents_search(client):
    document = client.get("/api/openapi.json").json
    for path in (STAFF_SEARCH, PARTNER_SEARCH):
        operation = document["paths"][path]["get"]
        assert any(p["name"] == "q" and p["required"] for p in operation["parameters"])
    schemas = document["components"]["schemas"]
    highlight = next(v for k, v in schemas.items() if k.startswith("StaffHighlight"))
    assert {"field", "message_id", "internal", "text", "ranges"} <= set(highlight["properties"])


def test_migration_indexes_existing_tickets(db_url, tmp_path):
    """Tickets written before 0008 are found after the upgrade; downgrade drops the index."""
    app = create_test_app(ticketing_config(db_url, tmp_path), migrate=False)
    with app.app_context():
        upgrade(revision="0007_ids_never_reused")
        db.session.execute(
            text(
                "INSERT INTO partners (name, status, created_at) VALUES "
                "('Initech', 'active', '2026-01-01')"
            )
        )
        db.session.execute(
            text(
                "INSERT INTO tickets (partner_id, title, description, category, status, priority,"
                " created_at, updated_at, needs_triage) VALUES (1, 'Old refund', 'tx-0001-aa',"
                " 'billing', 'open', 'low', '2026-01-01', '2026-01-01', false)"
            )
        )
        db.session.execute(
            text(
                "INSERT INTO messages (ticket_id, sender_type, sender_id, body, internal,"
                " created_at) VALUES (1, 'staff', 1, 'secret pelican', true, '2026-01-01')"
            )
        )
        db.session.commit()
        upgrade()
        staff = Actor("staff", 1, "an agent", "agent")
        partner = Actor("partner", 1, "Initech")
        with app.test_request_context():
            assert [h.ticket.id for h in search_page(staff, "tx-0001-aa", None, 10).items] == [1]
            assert [h.ticket.id for h in search_page(staff, "initech", None, 10).items] == [1]
            assert [h.ticket.id for h in search_page(staff, "pelican", None, 10).items] == [1]
            assert search_page(partner, "pelican", None, 10).items == []
            assert [h.ticket.id for h in search_page(partner, "refund", None, 10).items] == [1]
        db.session.rollback()
        downgrade(revision="0007_ids_never_reused")
        db.session.rollback()
        db.engine.dispose()


def test_words_and_marks():
    assert words("  invoice  tx-8f3a-19 invoice -- ") == ["invoice", "tx-8f3a-19"]
    with pytest.raises(ValueError):
        words("-- !!")
    assert marked("a \x02b\x03 c \x02d\x03\x02e\x03") == ("a b c de", [(2, 3), (6, 8)])
    assert marked("none") == ("none", [])
    assert marked("\x02tx\x03-\x028f3a\x03-\x0219\x03 \x02a\x03") == (
        "tx-8f3a-19 a",
        [(0, 10), (11, 12)],
    )


def test_snippets_cut_around_the_first_match():
    text = (
        " ".join(f"w{n}" for n in range(200)) + " needle " + " ".join("x" * 5 for _ in range(100))
    )
    at = text.index("needle")
    cut, ranges = snippet(text, [(at, at + 6)], width=100)
    assert cut.startswith("…") and cut.endswith("…") and len(cut) <= 102
    [(start, end)] = ranges
    assert cut[start:end] == "needle"
    assert not cut[1].isspace() and not cut[-2].isspace()
    assert snippet("short needle", [(6, 12)]) == ("short needle", [(6, 12)])
