"""What a request asks of the database: no reading back, reads without a transaction,
and pooled connections checked only when they sat idle.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.harness.app import migrated_app, ticketing_config
from tests.harness.seed import Maker
from tests.harness.sql_capture import capture
from ticketing.db import PING_AFTER_IDLE

BODY = {"title": "Invoice for May missing", "description": "We cannot find it anywhere."}


def test_creating_a_ticket_writes_it_and_reads_nothing_back(app, client, make):
    acme = make.partner()
    client.get("/api/v1/tickets", headers=acme.headers)  # the key is known from now on
    with capture(app) as seen:
        created = client.post("/api/v1/tickets", headers=acme.headers, json=BODY)
    assert created.status_code == 201
    assert seen.writes() == [
        ("INSERT", "tickets"),
        ("INSERT", "ticket_search"),  # the search index, in the same transaction
        ("INSERT", "ticket_audit"),
        ("INSERT", "outbox_messages"),
    ]
    # One read, of the open published incidents: linking the ticket to a known outage
    # (docs/status.md). With none open, nothing more is read (no partner alerts, no
    # scoring); the ticket's own row is never read back.
    assert [s.verb for s in seen.statements] == ["INSERT"] * 4 + ["SELECT"]
    assert "status_incidents" in seen.statements[-1].sql
    # What was answered from memory is what the database holds.
    stored = client.get(f"/api/v1/tickets/{created.json['id']}", headers=acme.headers)
    assert stored.json == created.json

    agent = make.staff()
    trail = client.get(
        f"/api/v1/staff/tickets/{created.json['id']}/audit", headers=agent.headers
    ).json["items"]
    assert [(e["field"], e["after"], e["actor_kind"]) for e in trail] == [
        ("status", "open", "partner"),
        ("priority", "medium", "system"),  # the keyword rules' default
        ("priority", "medium", "system"),  # the priority model: stays medium
        ("category", "billing", "system"),
    ]
    assert [e["id"] for e in trail] == sorted(e["id"] for e in trail)


def test_posting_a_message_reads_only_the_ticket(app, client, make):
    acme = make.partner()
    tid = make.ticket(acme)["id"]
    with capture(app) as seen:
        posted = client.post(
            f"/api/v1/tickets/{tid}/messages", headers=acme.headers, json={"body": "Any news?"}
        )
    assert posted.status_code == 201
    assert seen.verbs() == ["SELECT", "INSERT", "INSERT", "UPDATE"]  # message, search index
    listed = client.get(f"/api/v1/tickets/{tid}/messages", headers=acme.headers).json
    assert listed == {"items": [posted.json], "next_cursor": None}


@pytest.fixture
def pg_app(postgres_url, tmp_path):
    yield from migrated_app(ticketing_config(postgres_url, tmp_path))


def test_reads_run_without_a_transaction_on_postgresql(pg_app):
    client = pg_app.test_client()
    make = Maker(pg_app, client)
    acme, agent = make.partner(), make.staff()
    tid = make.ticket(acme)["id"]
    client.get("/api/v1/tickets", headers=acme.headers)
    client.get("/api/v1/staff/tickets", headers=agent.headers)
    with capture(pg_app) as reads:
        for path, party in (
            ("/api/v1/tickets", acme),
            (f"/api/v1/tickets/{tid}", acme),
            (f"/api/v1/tickets/{tid}/messages", acme),
            ("/api/v1/staff/tickets", agent),
            (f"/api/v1/staff/tickets/{tid}/audit", agent),
        ):
            assert client.get(path, headers=party.headers).status_code == 200
    assert reads.statements and all(s.autocommit for s in reads.statements)
    # Writes on the same pooled connections still run in a transaction.
    with capture(pg_app) as writes:
        client.post(f"/api/v1/tickets/{tid}/messages", headers=acme.headers, json={"body": "Hi"})
        client.post("/api/v1/tickets", headers=acme.headers, json=BODY)
    assert writes.statements and not any(s.autocommit for s in writes.statements)


def _terminate_connections(app) -> int:
    """Kill the server side of every connection to the app's database, as a restart would."""
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        return len(
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        )


def test_a_connection_that_died_while_idle_is_replaced(pg_app):
    client = pg_app.test_client()
    acme = Maker(pg_app, client).partner()
    assert client.get("/api/v1/tickets", headers=acme.headers).status_code == 200
    assert _terminate_connections(pg_app) >= 1
    time.sleep(PING_AFTER_IDLE + 0.2)  # idle long enough to be checked before use
    assert client.get("/api/v1/tickets", headers=acme.headers).status_code == 200
    assert client.post("/api/v1/tickets", headers=acme.headers, json=BODY).status_code == 201


def test_insert_row_leaves_the_object_as_a_flush_would(app, make):
    """One INSERT ... RETURNING: the row's values (defaults included) are the object's
    loaded state, it is persistent in the session, and later changes are flushed."""
    from sqlalchemy import inspect, select

    from ticketing.db import db, insert_row
    from ticketing.models import Partner, Ticket, utcnow

    acme = make.partner()
    with app.app_context():
        now = utcnow()
        ticket = Ticket(
            partner_id=acme.id,
            title="Invoice missing",
            description="None for May.",
            category="billing",
            priority="medium",
            created_at=now,
            updated_at=now,
        )
        with capture(app) as seen:
            assert insert_row(ticket) is ticket
        assert seen.writes() == [("INSERT", "tickets")]
        state = inspect(ticket)
        assert state.persistent and ticket in db.session and not state.expired_attributes
        assert ticket.id is not None and ticket.status == "open"  # the column default
        assert ticket.assignee_id is None and ticket.closed_at is None
        ticket.status = "in_progress"
        with capture(app) as seen:
            db.session.commit()
        assert seen.writes() == [("UPDATE", "tickets")]
        db.session.expunge_all()
        stored = db.session.execute(select(Ticket).where(Ticket.id == ticket.id)).scalar_one()
        assert (stored.title, stored.status, stored.created_at) == (
            "Invoice missing",
            "in_progress",
            now,
        )
        # An object with a related object set on it goes through the unit of work.
        partner = Partner(name="Beta Energy")
        other = Ticket(
            partner=partner,
            title="t",
            description="d",
            category="api",
            priority="low",
            created_at=now,
            updated_at=now,
        )
        insert_row(other)
        assert other.id is not None and partner.id is not None and other.partner_id == partner.id
        db.session.rollback()


def test_load_row_and_update_columns_leave_the_object_as_the_orm_would(app, make):
    """load_row: one SELECT by primary key, a persistent object with every column loaded
    (or the one already in the session, or None); update_columns: one UPDATE of just the
    columns given, nothing left pending for them, other changes still flushed."""
    from sqlalchemy import inspect, select

    from ticketing.db import db, load_row, update_columns
    from ticketing.models import Ticket, utcnow

    acme = make.partner()
    tid = make.ticket(acme)["id"]
    with app.app_context():
        with capture(app) as seen:
            ticket = load_row(Ticket, tid)
            assert load_row(Ticket, tid) is ticket  # from the session, no second SELECT
            assert load_row(Ticket, tid + 1000) is None
        assert seen.verbs() == ["SELECT", "SELECT"]
        state = inspect(ticket)
        assert state.persistent and not state.modified and not state.expired_attributes
        assert ticket.partner.id == acme.id  # relationships load on access
        expected = (
            db.session.execute(select(*Ticket.__table__.columns).where(Ticket.id == tid))
            .one()
            ._asdict()
        )
        assert {c: getattr(ticket, c) for c in expected} == expected

        later = utcnow()
        with capture(app) as seen:
            assert update_columns(ticket, updated_at=later, first_response_at=later) is ticket
        assert seen.writes() == [("UPDATE", "tickets")]
        assert (
            "first_response_at" in seen.statements[0].sql and "title" not in seen.statements[0].sql
        )
        assert not inspect(ticket).modified  # nothing left to flush for those columns
        ticket.status = "in_progress"
        with capture(app) as seen:
            db.session.commit()
        assert seen.writes() == [("UPDATE", "tickets")]
        db.session.expunge_all()
        stored = db.session.execute(select(Ticket).where(Ticket.id == tid)).scalar_one()
        assert (stored.updated_at, stored.first_response_at, stored.status) == (
            later,
            later,
            "in_progress",
        )
