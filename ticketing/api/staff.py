"""Staff API (``/api/v1/staff``): the support queue, triage and answers.

Every route needs a staff member's API key (agent or admin). Staff see every
ticket, internal notes and internal attachments included, and each ticket's
audit trail. Agents may assign tickets only to themselves; admins to anyone.
"""

from __future__ import annotations

from typing import Any

from flask import Response

from ticketing.api.base import Blueprint, accepts_upload, authenticate_requests
from ticketing.api.common import filters_of, page_limit, send_attachment, store_attachment
from ticketing.api.pagination import paginate_ticket_rows
from ticketing.api.schemas import (
    AssignSchema,
    AuditPageSchema,
    BulkResultPageSchema,
    BulkSchema,
    PageQuerySchema,
    SearchQuerySchema,
    StaffAttachmentPageSchema,
    StaffAttachmentSchema,
    StaffMessageCreateSchema,
    StaffMessagePageSchema,
    StaffMessageSchema,
    StaffQueueQuerySchema,
    StaffSearchPageSchema,
    StaffTicketPageSchema,
    StaffTicketSchema,
    StaffUploadSchema,
    StatusChangeSchema,
    TriageSchema,
)
from ticketing.auth import require_staff
from ticketing.desk import bulk, search, tickets
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


def _rows_page(
    model: type[Message | Attachment | TicketAudit], ticket_id: int, query: dict[str, Any]
) -> dict[str, Any]:
    """A page of the ticket's messages, attachments or audit entries (internal ones too)."""
    ticket = tickets.staff_ticket(ticket_id)
    page = paginate_ticket_rows(
        model, ticket.id, internal=True, cursor=query.get("cursor"), limit=page_limit(query)
    )
    return {"items": page.items, "next_cursor": page.next_cursor}


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


@bp.route("/tickets/search", methods=["GET"])
@bp.arguments(SearchQuerySchema, location="query")
@bp.response(200, StaffSearchPageSchema)
def search_tickets(query: dict[str, Any]) -> search.SearchPage:
    """Find tickets by words in their title, description, partner's name or messages

    Internal notes included. Best match first; each item has the ticket and
    its `highlights`: where it matched, as plain text with the `ranges` of the
    matched words. Follow `next_cursor` for more.
    """
    return search.search_page(
        _actor(), query["q"], cursor=query.get("cursor"), limit=page_limit(query)
    )


@bp.route("/tickets/<id:ticket_id>", methods=["GET"])
@bp.response(200, StaffTicketSchema)
def get_ticket(ticket_id: int) -> Ticket:
    """Get a ticket"""
    return tickets.staff_ticket(ticket_id)


@bp.route("/tickets/<id:ticket_id>/audit", methods=["GET"])
@bp.arguments(PageQuerySchema, location="query")
@bp.response(200, AuditPageSchema)
def audit_trail(query: dict[str, Any], ticket_id: int) -> dict[str, Any]:
    """The ticket's audit trail: every change, who made it, before and after, when

    Oldest first; follow `next_cursor` for more.
    """
    return _rows_page(TicketAudit, ticket_id, query)


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


@bp.route("/tickets/bulk", methods=["POST"])
@bp.arguments(BulkSchema)
@bp.response(200, BulkResultPageSchema)
def bulk_change(data: dict[str, Any]) -> dict[str, Any]:
    """Change many tickets at once: assign, status, priority, link to an incident, unlink

    Each ticket follows the rules of its single-ticket route (an agent assigns
    only itself, a transition must be allowed); a ticket refused is left as it
    was and the others change. `items` holds one result per ticket, in order.
    """
    actor = _actor()
    results = bulk.apply(actor, data["ticket_ids"], data["action"], data.get("value"))
    tickets.commit()
    return {"items": results, "next_cursor": None}


# ------------------------------------------------------------------ messages


@bp.route("/tickets/<id:ticket_id>/messages", methods=["GET"])
@bp.arguments(PageQuerySchema, location="query")
@bp.response(200, StaffMessagePageSchema)
def list_messages(query: dict[str, Any], ticket_id: int) -> dict[str, Any]:
    """All messages on the ticket, internal notes included, oldest first

    Follow `next_cursor` for more.
    """
    return _rows_page(Message, ticket_id, query)


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
@bp.arguments(PageQuerySchema, location="query")
@bp.response(200, StaffAttachmentPageSchema)
def list_attachments(query: dict[str, Any], ticket_id: int) -> dict[str, Any]:
    """All files attached to the ticket, internal ones included, oldest first

    Follow `next_cursor` for more.
    """
    return _rows_page(Attachment, ticket_id, query)


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
