"""Staff API for incidents and their tickets (``/api/v1/staff``).

- ``PUT /tickets/<id>/incident`` (``{"incident_id": 12}``) links a ticket by
  hand, ``DELETE /tickets/<id>/incident`` unlinks it (its SLA clock runs again);
- ``GET /incidents/<id>/suggestions``: the tickets that matched the incident
  too weakly to be linked, best first; ``DELETE`` on one dismisses it;
- ``POST /incidents/<id>/replies``: the incident's latest update (or
  ``update_id``) as a public reply on every linked ticket, each once;
- ``POST /incidents/<id>/updates``: a new update (``resolved`` resolves it),
  optionally sent at once to every linked ticket (``reply_to_tickets``);
- ``PATCH /incidents/<id>``: whether resolving it resolves its tickets, and
  the closing message.

The linked tickets themselves are the queue filtered by incident
(``GET /api/v1/staff/tickets?incident_id=12``), and bulk changes to them go
through ``POST /api/v1/staff/tickets/bulk`` (``link``, ``unlink`` too).
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app

from ticketing.api.base import Blueprint, authenticate_requests
from ticketing.api.dumping import FastDumpSchema
from ticketing.api.fields import Id, Text
from ticketing.api.schemas import StaffTicketSchema, StrictSchema
from ticketing.auth import Actor, require_staff
from ticketing.db import db, is_id
from ticketing.desk import bulk, tickets
from ticketing.errors import ApiError
from ticketing.models import Ticket
from ticketing.status import incident_tickets, incidents
from ticketing.status.models import INCIDENT_STATUSES, Incident, IncidentUpdate

bp = Blueprint(
    "status_staff",
    __name__,
    url_prefix="/api/v1/staff",
    description="Support staff: incidents and the tickets linked to them",
)
authenticate_requests(bp, require_staff)


class LinkSchema(StrictSchema):
    incident_id = Id(required=True, metadata={"description": "the status incident"})


class RepliesSchema(StrictSchema):
    update_id = Id(metadata={"description": "the incident update to send (default: the latest)"})


class RepliesResultSchema(FastDumpSchema):
    sent = ma.fields.Integer(required=True, metadata={"description": "replies posted now"})
    already = ma.fields.Integer(
        required=True, metadata={"description": "tickets that had this update already"}
    )
    closed = ma.fields.Integer(
        required=True, metadata={"description": "closed tickets, left as they are"}
    )


class UpdateSchema(StrictSchema):
    status = ma.fields.String(
        required=True,
        validate=ma.validate.OneOf(INCIDENT_STATUSES),
        metadata={"description": "investigating, identified, monitoring or resolved"},
    )
    body = Text(max_length=5000, required=True, metadata={"description": "what changed"})
    reply_to_tickets = ma.fields.Boolean(
        load_default=False,
        metadata={
            "description": "also post it as a public reply on every linked ticket (a "
            "resolution does so by itself when the incident resolves its tickets)"
        },
    )


class UpdateResultSchema(FastDumpSchema):
    update_id = ma.fields.Integer(required=True)
    status = ma.fields.String(required=True)
    replies = ma.fields.Nested(RepliesResultSchema, allow_none=True)
    tickets_resolved = ma.fields.Integer(required=True)


class IncidentSettingsSchema(StrictSchema):
    resolve_tickets = ma.fields.Boolean(
        metadata={"description": "resolving the incident resolves its open linked tickets"}
    )
    closing_message = Text(
        max_length=5000,
        allow_none=True,
        metadata={"description": "added to the resolution's reply on each ticket"},
    )


class IncidentTicketsSchema(FastDumpSchema):
    id = ma.fields.Integer(required=True)
    title = ma.fields.String(required=True)
    status = ma.fields.String(required=True)
    published = ma.fields.Boolean(required=True)
    resolve_tickets = ma.fields.Boolean(required=True)
    closing_message = ma.fields.String(allow_none=True)
    linked_tickets = ma.fields.Integer(required=True)


class SuggestionSchema(FastDumpSchema):
    ticket = ma.fields.Nested(StaffTicketSchema, required=True)
    score = ma.fields.Float(required=True)
    reason = ma.fields.String(required=True)


class SuggestionPageSchema(FastDumpSchema):
    items = ma.fields.List(ma.fields.Nested(SuggestionSchema), required=True)
    next_cursor = ma.fields.String(allow_none=True, required=True)


def _incident(incident_id: int) -> Incident:
    if "status" not in current_app.extensions:
        raise ApiError(404, "not_found", "no such incident")
    return incidents.get_incident(incident_id)


def _incident_view(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "title": incident.title,
        "status": incident.status,
        "published": incident.published,
        "resolve_tickets": incident.resolve_tickets,
        "closing_message": incident.closing_message,
        "linked_tickets": incident_tickets.linked_counts([incident.id]).get(incident.id, 0),
    }


@bp.route("/tickets/<id:ticket_id>/incident", methods=["PUT"])
@bp.arguments(LinkSchema)
@bp.response(200, StaffTicketSchema)
def link_ticket(data: dict[str, Any], ticket_id: int) -> Ticket:
    """Link the ticket to an incident (its SLA clock pauses while the incident is open)"""
    actor = require_staff()
    ticket = tickets.staff_ticket(ticket_id)
    incident = _incident(data["incident_id"])
    incident_tickets.link(ticket, incident, actor, "linked by staff")
    tickets.commit()
    return ticket


@bp.route("/tickets/<id:ticket_id>/incident", methods=["DELETE"])
@bp.response(200, StaffTicketSchema)
def unlink_ticket(ticket_id: int) -> Ticket:
    """Unlink the ticket from its incident (its SLA clock runs again)"""
    actor = require_staff()
    ticket = tickets.staff_ticket(ticket_id)
    incident_tickets.unlink(ticket, actor)
    tickets.commit()
    return ticket


@bp.route("/incidents/<id:incident_id>", methods=["PATCH"])
@bp.arguments(IncidentSettingsSchema)
@bp.response(200, IncidentTicketsSchema)
def incident_settings(data: dict[str, Any], incident_id: int) -> dict[str, Any]:
    """Whether resolving the incident resolves its linked tickets, and the closing message"""
    actor = require_staff()
    incident = _incident(incident_id)
    changed = []
    if "resolve_tickets" in data and data["resolve_tickets"] != incident.resolve_tickets:
        incident.resolve_tickets = data["resolve_tickets"]
        changed.append(f"resolve_tickets={'on' if incident.resolve_tickets else 'off'}")
    if "closing_message" in data:
        message = (data["closing_message"] or "").strip() or None
        if message != incident.closing_message:
            incident.closing_message = message
            changed.append("closing message")
    if changed:
        incidents.audit("tickets_settings", ("staff", actor.id), ", ".join(changed), incident)
    tickets.commit()
    return _incident_view(incident)


@bp.route("/incidents/<id:incident_id>/updates", methods=["POST"])
@bp.arguments(UpdateSchema)
@bp.response(201, UpdateResultSchema)
@bp.error(409, "The incident is resolved")
def post_update(data: dict[str, Any], incident_id: int) -> tuple[dict[str, Any], int]:
    """Post an incident update; `resolved` resolves the incident (and, when it resolves
    its tickets, each open linked ticket with the closing message)"""
    actor = require_staff()
    incident = _incident(incident_id)
    before = {t.id for t in incident_tickets.linked_tickets(incident.id) if t.status == "resolved"}
    update = incidents.post_update(incident, data["status"], data["body"], ("staff", actor.id))
    replies = None
    if data["reply_to_tickets"] and data["status"] != "resolved":
        replies = incident_tickets.reply_to_linked(incident, update, actor)
    resolved = 0
    if data["status"] == "resolved":
        after = {
            t.id for t in incident_tickets.linked_tickets(incident.id) if t.status == "resolved"
        }
        resolved = len(after - before)
    tickets.commit()
    from ticketing.status import page

    page.invalidate()
    return {
        "update_id": update.id,
        "status": incident.status,
        "replies": replies,
        "tickets_resolved": resolved,
    }, 201


@bp.route("/incidents/<id:incident_id>/replies", methods=["POST"])
@bp.arguments(RepliesSchema)
@bp.response(200, RepliesResultSchema)
@bp.error(409, "The incident is a draft (publish it first), or has no update")
def reply_to_linked(data: dict[str, Any], incident_id: int) -> incident_tickets.BulkReply:
    """Post an incident update as a public reply on every linked ticket, once each

    Each reply is a staff reply like any other (audit trail, partner webhook,
    first response). Sending the same update again replies only to tickets
    linked since; closed tickets are left alone.
    """
    actor = require_staff()
    incident = _incident(incident_id)
    update = None
    if "update_id" in data:
        update = db.session.get(IncidentUpdate, data["update_id"])
        if update is None or update.incident_id != incident.id:
            raise ApiError(404, "not_found", "no such update of this incident")
    result = incident_tickets.reply_to_linked(incident, update, actor)
    incidents.audit(
        "replied_to_tickets",
        ("staff", actor.id),
        f"{result.sent} sent, {result.already} already had it, {result.closed} closed",
        incident,
    )
    tickets.commit()
    return result


@bp.route("/incidents/<id:incident_id>/suggestions", methods=["GET"])
@bp.response(200, SuggestionPageSchema)
def suggestions(incident_id: int) -> dict[str, Any]:
    """Tickets that may be about the incident (weak matches), best first"""
    incident = _incident(incident_id)
    items = [
        {"ticket": ticket, "score": suggestion.score, "reason": suggestion.reason}
        for ticket, suggestion in incident_tickets.suggested_tickets(incident.id)
    ]
    return {"items": items, "next_cursor": None}


@bp.route("/incidents/<id:incident_id>/suggestions/<id:ticket_id>", methods=["DELETE"])
@bp.response(204)
def dismiss_suggestion(incident_id: int, ticket_id: int) -> tuple[str, int]:
    """Dismiss a suggestion: the ticket is not about this incident"""
    actor = require_staff()
    incident = _incident(incident_id)
    ticket = tickets.staff_ticket(ticket_id)
    if not incident_tickets.dismiss(ticket, incident.id, actor):
        raise ApiError(404, "not_found", "no such suggestion")
    tickets.commit()
    return "", 204


# ------------------------------------------------------------------ bulk actions


def _link_value(value: Any) -> Incident:
    if not is_id(value):
        raise ApiError(
            422,
            "validation_error",
            "the request is not valid",
            details={"fields": {"json": {"value": ["Must be an incident id."]}}},
        )
    return _incident(value)


def _link(ticket: Ticket, incident: Incident, actor: Actor) -> bool:
    return incident_tickets.link(ticket, incident, actor, "linked by staff")


bulk.ACTIONS["link"] = bulk.Action(_link_value, _link)
bulk.ACTIONS["unlink"] = bulk.Action(
    lambda value: None, lambda t, _, actor: incident_tickets.unlink(t, actor)
)
