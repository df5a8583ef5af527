"""The ceilings and floors for ticketing_throughput: bare Flask JSON endpoints.

    gunicorn -c ticketing/runtime/gunicorn.conf.py benchmarks._bare_app:app

The same gunicorn settings as the ticket service (the config file's
``wsgi_app`` is overridden by the argument), and the same database pool
(SQLAlchemy's default ``QueuePool``, as Flask-SQLAlchemy gives the service).

- ``POST /bare`` parses a JSON body and answers a small JSON document (201);
  ``GET /bare`` answers JSON (200). No database, authentication, validation
  or metrics: what is left is gunicorn, Werkzeug and Flask.
- ``POST /bare/db`` does the same plus one ``INSERT ... RETURNING`` through
  SQLAlchemy Core in its own transaction, on ``TICKETING_DATABASE_URL``
  (table ``bare_items``, created by the benchmark).
- ``POST /bare/ticket`` is the floor of a ticket creation: exactly the
  statements the service makes for one, through SQLAlchemy Core on the
  service's own tables (same indexes, same foreign keys), values prepared in
  Python: ``INSERT`` the ticket ``RETURNING id``, ``INSERT`` its three audit
  rows in one statement, ``INSERT`` its outbox row ``ON CONFLICT DO NOTHING
  RETURNING id``, ``COMMIT``; it answers the ticket's fields (201).
- ``POST /bare/tickets/<id>/messages`` is the floor of posting a message:
  ``SELECT`` the ticket, ``INSERT`` the message ``RETURNING id``, ``UPDATE``
  the ticket's ``updated_at``, ``COMMIT``; it answers the message (201).

The floors skip what is not the work: no authentication (the partner is
``BARE_PARTNER_ID``), no validation, no classification, metrics, signals,
scanning or limits.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from flask import Flask, abort, request
from sqlalchemy import Column, Integer, MetaData, Table, Text, create_engine, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ticketing.models import Message, Ticket, TicketAudit
from ticketing.outbox.models import OutboxMessage

app = Flask(__name__)

items = Table(
    "bare_items",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("title", Text),
    Column("description", Text),
)
tickets, audit = Ticket.__table__, TicketAudit.__table__
outbox, messages = OutboxMessage.__table__, Message.__table__
INSERT_TICKET = insert(tickets).returning(tickets.c.id)
INSERT_AUDIT = insert(audit).returning(audit.c.id)  # several rows in one cached statement
INSERT_OUTBOX = (
    pg_insert(outbox).on_conflict_do_nothing(index_elements=["dedup_key"]).returning(outbox.c.id)
)
SELECT_TICKET = select(tickets)
INSERT_MESSAGE = insert(messages).returning(messages.c.id)
TOUCH_TICKET = update(tickets)
_engine = None


def engine():
    global _engine
    if _engine is None:
        url = os.environ["TICKETING_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://")
        _engine = create_engine(url)
    return _engine


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat() + "Z"


@app.post("/bare")
def create():
    body = request.get_json()
    return {"id": 1, "title": body.get("title"), "status": "open"}, 201


@app.post("/bare/db")
def create_row():
    body = request.get_json()
    with engine().begin() as conn:
        new_id = conn.execute(
            insert(items)
            .values(title=body.get("title"), description=body.get("description"))
            .returning(items.c.id)
        ).scalar_one()
    return {"id": new_id, "title": body.get("title"), "status": "open"}, 201


@app.post("/bare/ticket")
def create_ticket():
    body = request.get_json()
    now = _utcnow()
    ticket = {
        "partner_id": int(os.environ["BARE_PARTNER_ID"]),
        "title": body["title"],
        "description": body["description"],
        "category": "other",
        "status": "open",
        "priority": "medium",
        "assignee_id": None,
        "created_at": now,
        "updated_at": now,
        "first_response_at": None,
        "first_response_due_at": now + timedelta(hours=8),
        "resolution_due_at": now + timedelta(days=3),
        "resolved_at": None,
        "closed_at": None,
    }
    with engine().begin() as conn:
        ticket_id = conn.execute(INSERT_TICKET, ticket).scalar_one()
        conn.execute(
            INSERT_AUDIT,
            [
                {
                    "ticket_id": ticket_id,
                    "actor_kind": kind,
                    "actor_id": actor,
                    "field": field,
                    "before": None,
                    "after": after,
                    "reason": reason,
                    "at": now,
                }
                for kind, actor, field, after, reason in (
                    ("partner", ticket["partner_id"], "status", "open", "ticket created"),
                    ("system", None, "priority", "medium", "default priority"),
                    ("system", None, "category", "other", "no rule matched"),
                )
            ],
        )
        conn.execute(
            INSERT_OUTBOX,
            {
                "kind": "ticket_created",
                "dedup_key": f"ticket_created:{ticket_id}",
                "payload": {
                    "labels": {
                        "alertname": "SupportTicketCreated",
                        "severity": "info",
                        "team": "support",
                        "ticket": str(ticket_id),
                        "priority": "medium",
                        "category": "other",
                        "partner": str(ticket["partner_id"]),
                    },
                    "annotations": {
                        "summary": f"New medium priority ticket #{ticket_id}: {ticket['title']}",
                        "description": ticket["description"],
                    },
                    "startsAt": now.isoformat(timespec="milliseconds") + "Z",
                },
                "created_at": now,
                "attempts": 0,
                "next_attempt_at": now,
            },
        ).scalar_one_or_none()
    answer = {
        key: _iso(value) if isinstance(value, datetime) or value is None else value
        for key, value in ticket.items()
        if key not in ("partner_id", "assignee_id")
    }
    answer.update(
        id=ticket_id, first_response_overdue=False, resolution_overdue=False, overdue=False
    )
    return answer, 201


@app.post("/bare/tickets/<int:ticket_id>/messages")
def post_message(ticket_id):
    body = request.get_json()
    now = _utcnow()
    partner_id = int(os.environ["BARE_PARTNER_ID"])
    with engine().begin() as conn:
        ticket = conn.execute(SELECT_TICKET.where(tickets.c.id == ticket_id)).first()
        if ticket is None or ticket.partner_id != partner_id or ticket.status == "closed":
            abort(404)
        message = {
            "ticket_id": ticket_id,
            "sender_type": "partner",
            "sender_id": partner_id,
            "body": body["body"],
            "internal": False,
            "created_at": now,
        }
        message_id = conn.execute(INSERT_MESSAGE, message).scalar_one()
        conn.execute(TOUCH_TICKET.where(tickets.c.id == ticket_id), {"updated_at": now})
    return {
        "id": message_id,
        "ticket_id": ticket_id,
        "sender_type": "partner",
        "body": message["body"],
        "created_at": _iso(now),
    }, 201


@app.get("/bare")
def read():
    return {"items": [], "next_cursor": None}


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
