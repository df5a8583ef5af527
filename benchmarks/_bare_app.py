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
- ``POST /bare/ticket`` is the floor of a ticket creation: the work the route
  must do and nothing else. It chooses the priority and the category with
  the same call the route makes (``ticketing.desk.tickets.classifier()
  .classify(title, description, None)``: the keyword rules and the category
  model of the shipped ``ticketing.yml``, merged with ``TICKETING_CONFIG``
  when set, loaded once per worker as the service loads them), then makes
  exactly the statements the service makes for one, through SQLAlchemy Core
  on the service's own tables (same indexes, same foreign keys), with the
  decision's values: ``INSERT`` the ticket ``RETURNING id``, ``INSERT`` its
  search document (``ticketing.desk.search.PG_INDEX_TICKET``), ``INSERT`` its
  audit rows (three, or four or five when the rules raise the priority or the
  model's confidence asks for triage) in one statement, ``INSERT`` its outbox
  row ``ON CONFLICT DO NOTHING RETURNING id``, and reads the open published
  incidents (``SELECT`` on ``status_incidents``: linking a ticket to a known
  outage is the route's work too; with none open it scores nothing),
  ``COMMIT``; it answers the ticket's fields (201).
- ``POST /bare/tickets/<id>/messages`` is the floor of posting a message:
  ``SELECT`` the ticket, ``INSERT`` the message ``RETURNING id``, ``INSERT``
  its search document, ``UPDATE``
  the ticket's ``updated_at``, ``COMMIT``; it answers the message (201).

The floors skip what is not the work: no authentication (the partner is
``BARE_PARTNER_ID``), no validation, metrics, signals, scanning or limits.
Choosing the category is the work (a product decision): the creation floor
classifies as the route does.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from flask import Flask, abort, request
from sqlalchemy import Column, Integer, MetaData, Table, Text, create_engine, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ticketing.config import load_sections
from ticketing.desk import sla
from ticketing.desk.classifier import init_app as init_classifier
from ticketing.desk.search import PG_INDEX_MESSAGE, PG_INDEX_TICKET
from ticketing.desk.settings import check_core
from ticketing.desk.tickets import classifier
from ticketing.models import Message, Ticket, TicketAudit
from ticketing.outbox.models import OutboxMessage
from ticketing.outbox.notifications import severity_for_priority
from ticketing.status.models import Incident

app = Flask(__name__)
# What ``ticketing.desk.tickets.classifier()`` reads, set up as ``create_app`` sets
# it up: the checked core sections and the category model, loaded once per process.
app.config["TICKETING"] = load_sections(os.environ.get("TICKETING_CONFIG"))
app.extensions["ticketing"] = check_core(app.config["TICKETING"])
init_classifier(app)

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
#: The linking's read (ticketing.status.incident_tickets.open_incidents).
SELECT_OPEN_INCIDENTS = select(
    Incident.__table__.c.id, Incident.__table__.c.title, Incident.__table__.c.components
).where(Incident.__table__.c.published_at.is_not(None), Incident.__table__.c.resolved_at.is_(None))
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
    title, description = body["title"], body["description"]
    # The route's own call (ticketing.desk.tickets.create_ticket), no priority requested.
    decision = classifier().classify(title, description, None)
    settings = app.extensions["ticketing"]
    first_due, resolution_due = sla.due_times(settings.sla, decision.priority, now)
    ticket = {
        "partner_id": int(os.environ["BARE_PARTNER_ID"]),
        "title": title,
        "description": description,
        "category": decision.category,
        "status": "open",
        "priority": decision.priority,
        "assignee_id": None,
        "created_at": now,
        "updated_at": now,
        "first_response_at": None,
        "first_response_due_at": first_due,
        "resolution_due_at": resolution_due,
        "resolved_at": None,
        "closed_at": None,
        "category_confidence": decision.category_confidence,
        "needs_triage": decision.needs_triage,
    }
    default = settings.classification.default_priority
    entries = [
        ("partner", ticket["partner_id"], "status", None, "open", "ticket created", None),
        ("system", None, "priority", None, default, "default priority", None),
    ]
    if decision.priority_reason:
        entries.append(
            ("system", None, "priority", default, decision.priority, decision.priority_reason, None)
        )
    confidence = decision.category_confidence
    entries.append(
        ("system", None, "category", None, decision.category, decision.category_reason, confidence)
    )
    if decision.needs_triage:
        reason = "category confidence below classifier.triage_below"
        entries.append(("system", None, "needs_triage", None, "True", reason, confidence))
    with engine().begin() as conn:
        ticket_id = conn.execute(INSERT_TICKET, ticket).scalar_one()
        conn.execute(
            PG_INDEX_TICKET,
            {
                "ticket_id": ticket_id,
                "partner_id": ticket["partner_id"],
                "title": title,
                "body": description,
            },
        )
        conn.execute(
            INSERT_AUDIT,
            [
                {
                    "ticket_id": ticket_id,
                    "actor_kind": kind,
                    "actor_id": actor,
                    "field": field,
                    "before": before,
                    "after": after,
                    "reason": reason,
                    "confidence": confidence,
                    "at": now,
                }
                for kind, actor, field, before, after, reason, confidence in entries
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
                        "severity": severity_for_priority(decision.priority),
                        "team": "support",
                        "ticket": str(ticket_id),
                        "priority": decision.priority,
                        "category": decision.category,
                        "partner": str(ticket["partner_id"]),
                    },
                    "annotations": {
                        "summary": f"New {decision.priority} priority ticket #{ticket_id}: {title}",
                        "description": description,
                    },
                    "startsAt": now.isoformat(timespec="milliseconds") + "Z",
                },
                "created_at": now,
                "attempts": 0,
                "next_attempt_at": now,
            },
        ).scalar_one_or_none()
        conn.execute(SELECT_OPEN_INCIDENTS).all()
    answer = {
        key: _iso(value) if isinstance(value, datetime) or value is None else value
        for key, value in ticket.items()
        if key not in ("partner_id", "assignee_id", "category_confidence", "needs_triage")
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
        conn.execute(
            PG_INDEX_MESSAGE,
            {
                "ticket_id": ticket_id,
                "message_id": message_id,
                "internal": False,
                "body": body["body"],
            },
        )
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
