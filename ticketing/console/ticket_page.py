"""A ticket's page (``/console/tickets/<id>``): summary, conversation, forms, audit trail;
and its attachments' downloads."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from flask import current_app, render_template, url_for
from flask.typing import ResponseReturnValue

from ticketing.api.common import send_attachment
from ticketing.auth import Actor
from ticketing.console.blueprint import bp, settings, signed_in_staff
from ticketing.console.queue_page import console_sla_state, incident_choices, staff_and_partners
from ticketing.console.regions import render_regions
from ticketing.db import db
from ticketing.desk import sla as sla_rules
from ticketing.desk import tickets
from ticketing.desk.choices import CATEGORIES, PRIORITIES
from ticketing.desk.workflow import TRANSITIONS
from ticketing.models import Attachment, Message, Ticket, TicketAudit, utcnow

TICKET_REGIONS = {
    "ticket-summary": "console/_ticket_summary.html",
    "conversation": "console/_conversation.html",
    "ticket-actions": "console/_ticket_actions.html",
    "audit": "console/_audit.html",
}


def attachment_copies(attachments: Sequence[Attachment]) -> dict[int, tuple[int, int]]:
    """Attachment id -> (n, of how many) for files sharing their name with another,
    in upload order: what tells ``report.pdf`` from ``report.pdf`` on the page."""
    by_name: dict[str, list[int]] = {}
    for attachment in attachments:
        by_name.setdefault(attachment.filename, []).append(attachment.id)
    return {
        attachment_id: (n, len(ids))
        for ids in by_name.values()
        if len(ids) > 1
        for n, attachment_id in enumerate(ids, 1)
    }


def incident_context(ticket: Ticket) -> dict[str, Any]:
    """The ticket's incident (linked, or suggested), and the open incidents to link it to."""
    if "status" not in current_app.extensions:
        return {"incident": None, "suggestion": None, "suggested_incident": None}
    from ticketing.status.models import Incident, IncidentSuggestion

    incident = db.session.get(Incident, ticket.incident_id) if ticket.incident_id else None
    suggestion = suggested = None
    if incident is None:
        row = db.session.execute(
            db.select(IncidentSuggestion, Incident)
            .join(Incident, Incident.id == IncidentSuggestion.incident_id)
            .where(IncidentSuggestion.ticket_id == ticket.id)
            .order_by(IncidentSuggestion.score.desc())
            .limit(1)
        ).first()
        if row is not None:
            suggestion, suggested = row
    return {
        "incident": incident,
        "suggestion": suggestion,
        "suggested_incident": suggested,
        "open_incidents": incident_choices()["open"],
    }


def ticket_context(actor: Actor, ticket: Ticket) -> dict[str, Any]:
    now = utcnow()
    messages = tickets.ticket_rows(Message, ticket)
    attachments = tickets.ticket_rows(Attachment, ticket)
    audit = tickets.ticket_rows(TicketAudit, ticket)
    staff, partners = staff_and_partners()
    staff_names = {s.id: s.name for s in staff}
    partner_names = {p.id: p.name for p in partners}
    return {
        "actor": actor,
        "ticket": ticket,
        "messages": messages,
        "attachments": attachments,
        "attachment_copies": attachment_copies(attachments),
        "audit": audit,
        "now": now,
        "staff": [s for s in staff if s.active],
        "staff_names": staff_names,
        "partner_names": partner_names,
        "sla": console_sla_state(ticket, now, timedelta(seconds=settings().due_soon)),
        "paused_seconds": sla_rules.paused_seconds(ticket, now),
        **incident_context(ticket),
        "transitions": TRANSITIONS.get(ticket.status, ()),
        "priorities": PRIORITIES,
        "categories": CATEGORIES,
        "live_url": url_for("console.live_ticket", ticket_id=ticket.id),
        "error": None,
        "draft": "",
    }


def ticket_page(ticket: Ticket, status: int = 200, **extra: Any) -> ResponseReturnValue:
    """The ticket's page; ``extra`` overrides the context (``error``, ``draft``)."""
    context = ticket_context(signed_in_staff(), ticket)
    context.update(extra)
    regions, version = render_regions(TICKET_REGIONS, context)
    return render_template(
        "console/ticket.html", regions=regions, version=version, **context
    ), status


@bp.get("/tickets/<id:ticket_id>")
def ticket(ticket_id: int) -> ResponseReturnValue:
    return ticket_page(tickets.staff_ticket(ticket_id))


@bp.get("/tickets/<id:ticket_id>/attachments/<id:attachment_id>")
def download(ticket_id: int, attachment_id: int) -> ResponseReturnValue:
    actor = signed_in_staff()
    ticket = tickets.staff_ticket(ticket_id)
    return send_attachment(tickets.ticket_attachment(actor, ticket, attachment_id))
