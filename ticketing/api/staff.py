"""Staff API (``/api/v1/staff``): the support queue, triage and answers.

Every route needs a staff member's API key (agent or admin). Staff see every
ticket, internal notes and internal attachments included, and each ticket's
audit trail. Agents may assign tickets only to themselves; admins to anyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Response

from ticketing.api.base import Blueprint, accepts_upload, authenticate_requests
from ticketing.api.common import filters_of, page_limit, send_attachment, store_attachment
from ticketing.api.schemas import (
    AssignSchema,
    AuditEntrySchema,
    StaffAttachmentSchema,
    StaffMessageCreateSchema,
    StaffMessageSchema,
    StaffQueueQuerySchema,
    StaffTicketPageSchema,
    StaffTicketSchema,
    StaffUploadSchema,
    StatusChangeSchema,
    TriageSchema,
)
from ticketing.auth import require_staff
from ticketing.desk import tickets
from ticketing.desk.queue import queue_page
from ticketing.models import Attachment, Message, Ticket, TicketAudit

bp = Blueprint(
    "staff",
    __name__,
    url_prefix="/api/v1/staff",
    description="Support staff: queue, triage, replies and internal notes",
)


authenticate_requests(bp, require_staff)


_actor = require_staff


# ------------------------------------------------------------------ queue


@bp.route("/tickets", methods=["GET"])
@bp.arguments(StaffQueueQuerySchema, location="query")
@bp.response(200, StaffTicketPageSchema)
def queue(query: dict[str, Any]) -> dict[str, Any]:
    """The ticket queue, oldest first

    Filter by status, priority, category (comma-separated values), partner,
    assignee (`me`, `none` or an id), SLA state (`overdue`) and triage
    (`needs_triage`: the automatic category was not confident enough). `order=due`
    puts the next SLA due time first (the first response's until it is given,
    then the resolution's).
    """
    page = queue_page(
        _actor(), filters_of(query), cursor=query.get("cursor"), limit=page_limit(query)
    )
    return {"items": page.items, "next_cursor": page.next_cursor}


@bp.route("/tickets/<id:ticket_id>", methods=["GET"])
@bp.response(200, StaffTicketSchema)
def get_ticket(ticket_id: int) -> Ticket:
    """Get a ticket"""
    return tickets.staff_ticket(ticket_id)


@bp.route("/tickets/<id:ticket_id>/audit", methods=["GET"])
@bp.response(200, AuditEntrySchema(many=True))
def audit_trail(ticket_id: int) -> Sequence[TicketAudit]:
    """The ticket's audit trail: every change, who made it, before and after, when"""
    ticket = tickets.staff_ticket(ticket_id)
    return tickets.ticket_rows(TicketAudit, ticket)


# ------------------------------------------------------------------ triage


@bp.route("/tickets/<id:ticket_id>/assign", methods=["POST"])
@bp.arguments(AssignSchema)
@bp.response(200, StaffTicketSchema)
@bp.error(403, "Agents may only assign tickets to themselves")
def assign(data: dict[str, Any], ticket_id: int) -> Ticket:
    """Assign the ticket to a staff member (or to nobody, with null)"""
    actor = _actor()
    ticket = tickets.staff_ticket(ticket_id)
    tickets.assign(ticket, data["assignee_id"], actor)
    tickets.commit()
    return ticket


@bp.route("/tickets/<id:ticket_id>/status", methods=["POST"])
@bp.arguments(StatusChangeSchema)
@bp.response(200, StaffTicketSchema)
@bp.error(409, "Not an allowed transition; `details.allowed` lists those that are")
def change_status(data: dict[str, Any], ticket_id: int) -> Ticket:
    """Move the ticket to another status

    open -> in_progress, resolved, closed; in_progress -> open, resolved,
    closed; resolved -> open, in_progress, closed; closed -> open.
    """
    actor = _actor()
    ticket = tickets.staff_ticket(ticket_id)
    tickets.change_status(ticket, data["status"], actor)
    tickets.commit()
    return ticket


@bp.route("/tickets/<id:ticket_id>", methods=["PATCH"])
@bp.arguments(TriageSchema)
@bp.response(200, StaffTicketSchema)
def triage(data: dict[str, Any], ticket_id: int) -> Ticket:
    """Change the ticket's priority and/or category (overrides the automatic decision)

    Setting the category, even to the one it has, ends the ticket's triage
    (`needs_triage` false).
    """
    actor = _actor()
    ticket = tickets.staff_ticket(ticket_id)
    if "priority" in data:
        tickets.set_priority(ticket, data["priority"], actor)
    if "category" in data:
        tickets.set_category(ticket, data["category"], actor)
    tickets.commit()
    return ticket


# ------------------------------------------------------------------ messages


@bp.route("/tickets/<id:ticket_id>/messages", methods=["GET"])
@bp.response(200, StaffMessageSchema(many=True))
def list_messages(ticket_id: int) -> Sequence[Message]:
    """All messages on the ticket, internal notes included, oldest first"""
    ticket = tickets.staff_ticket(ticket_id)
    return tickets.ticket_rows(Message, ticket)


@bp.route("/tickets/<id:ticket_id>/messages", methods=["POST"])
@bp.arguments(StaffMessageCreateSchema)
@bp.response(201, StaffMessageSchema)
@bp.error(409, "The ticket is closed (internal notes are still allowed)")
def post_message(data: dict[str, Any], ticket_id: int) -> Message:
    """Reply to the partner, or add an internal note (`internal: true`)

    The first public reply is the ticket's first response (SLA).
    """
    actor = _actor()
    ticket = tickets.staff_ticket(ticket_id)
    message = tickets.post_message(ticket, actor, data["body"], internal=data["internal"])
    tickets.commit()
    return message


# ------------------------------------------------------------------ attachments


@bp.route("/tickets/<id:ticket_id>/attachments", methods=["GET"])
@bp.response(200, StaffAttachmentSchema(many=True))
def list_attachments(ticket_id: int) -> Sequence[Attachment]:
    """All files attached to the ticket, internal ones included"""
    ticket = tickets.staff_ticket(ticket_id)
    return tickets.ticket_rows(Attachment, ticket)


@bp.route("/tickets/<id:ticket_id>/attachments", methods=["POST"])
@accepts_upload
@bp.arguments(StaffUploadSchema, location="multipart")
@bp.response(201, StaffAttachmentSchema)
@bp.error(409, "The ticket is closed")
@bp.error(413, "The file is larger than allowed")
@bp.error(415, "Files of this type cannot be attached")
def upload_attachment(form: dict[str, Any], ticket_id: int) -> tuple[Attachment, int]:
    """Attach a file (multipart/form-data: `file`, optional `internal=true`)"""
    actor = _actor()
    ticket = tickets.staff_ticket(ticket_id)
    return store_attachment(ticket, actor, form["file"], internal=form["internal"]), 201


@bp.route("/tickets/<id:ticket_id>/attachments/<id:attachment_id>", methods=["GET"])
@bp.response(200, description="The file, as a download", content_type="application/octet-stream")
def download_attachment(ticket_id: int, attachment_id: int) -> Response:
    """Download a file attached to the ticket"""
    actor = _actor()
    ticket = tickets.staff_ticket(ticket_id)
    return send_attachment(tickets.ticket_attachment(actor, ticket, attachment_id))
