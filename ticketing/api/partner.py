"""Partner API (``/api/v1``): file tickets and follow them.

Every route needs a partner's API key and only ever reaches that partner's
own tickets. Another partner's ticket, attachment or message list is answered
exactly like one that does not exist (404), and reported through
``signals.access_denied``. Internal staff notes and internal attachments are
never part of any answer here.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request
from sqlalchemy.exc import IntegrityError

from ticketing.api.base import Blueprint, accepts_upload, authenticate_requests
from ticketing.api.common import filters_of, page_limit, send_attachment, store_attachment
from ticketing.api.pagination import paginate, paginate_ticket_rows
from ticketing.api.schemas import (
    IdempotencyHeaderSchema,
    PageQuerySchema,
    PartnerAttachmentPageSchema,
    PartnerAttachmentSchema,
    PartnerMessageCreateSchema,
    PartnerMessagePageSchema,
    PartnerMessageSchema,
    PartnerSearchPageSchema,
    PartnerTicketPageSchema,
    PartnerTicketQuerySchema,
    PartnerTicketSchema,
    PartnerUploadSchema,
    SearchQuerySchema,
    TicketCreateSchema,
)
from ticketing.auth import require_partner
from ticketing.db import db
from ticketing.desk import idempotency, search, tickets
from ticketing.desk.metrics import discard_after_commit
from ticketing.desk.workflow import PARTNER_TRANSITIONS
from ticketing.errors import ApiError, not_found
from ticketing.models import Attachment, Message, Ticket, utcnow

#: What a view answers: the ticket, with its status (and headers, for a replay).
ViewAnswer = tuple[Ticket, int] | tuple[Ticket, int, dict[str, str]]

bp = Blueprint(
    "partner",
    __name__,
    url_prefix="/api/v1",
    description="Partners: file tickets, follow them, talk to support",
)


authenticate_requests(bp, require_partner)


_actor = require_partner


# ------------------------------------------------------------------ tickets


@bp.route("/tickets", methods=["POST"])
@bp.arguments(IdempotencyHeaderSchema, location="headers")
@bp.arguments(TicketCreateSchema)
@bp.response(201, PartnerTicketSchema, description="Created")
@bp.alt_response(
    200,
    schema=PartnerTicketSchema,
    description="Replayed: the ticket this Idempotency-Key created before",
)
@bp.error(409, "A request with the same Idempotency-Key is in progress")
def create_ticket(headers: dict[str, Any], data: dict[str, Any]) -> ViewAnswer:
    """File a ticket

    Priority is raised and the category chosen by the rules in the
    configuration; both decisions are in the ticket's audit trail.
    """
    actor = _actor()
    key = headers.get("idempotency_key")
    if key is None:
        ticket = tickets.create_ticket(actor, **data)
        tickets.commit()
        return ticket, 201

    settings = tickets.settings()
    now = utcnow()
    body_hash = idempotency.request_hash(request.get_json())
    record = idempotency.find(actor.id, key, now, settings.api.idempotency_ttl)
    if record is not None:
        return _replay(idempotency.check_replay(record, body_hash))
    ticket = tickets.create_ticket(actor, **data)
    idempotency.remember(actor.id, key, body_hash, ticket.id, now)
    try:
        tickets.commit()
    except IntegrityError:
        # Another request with the same key won the race: answer what it created.
        db.session.rollback()
        discard_after_commit()
        record = idempotency.find(actor.id, key, now, settings.api.idempotency_ttl)
        if record is None:
            raise ApiError(
                409, "conflict", "a request with the same Idempotency-Key is in progress; retry it"
            ) from None
        return _replay(idempotency.check_replay(record, body_hash))
    return ticket, 201


def _replay(ticket_id: int) -> ViewAnswer:
    ticket = db.session.get(Ticket, ticket_id)
    if ticket is None:  # pragma: no cover - tickets are never deleted
        raise not_found("ticket")
    return ticket, 200, {"Idempotent-Replayed": "true"}


@bp.route("/tickets", methods=["GET"])
@bp.arguments(PartnerTicketQuerySchema, location="query")
@bp.response(200, PartnerTicketPageSchema)
def list_tickets(query: dict[str, Any]) -> dict[str, Any]:
    """List your tickets, newest first

    Filter by status, priority and category (comma-separated values); follow
    `next_cursor` for more.
    """
    actor = _actor()
    filters = filters_of(query)
    stmt = db.select(Ticket).where(Ticket.partner_id == actor.id)
    for name in ("status", "priority", "category"):
        if name in filters:
            stmt = stmt.where(getattr(Ticket, name).in_(filters[name]))
    page = paginate(
        stmt,
        Ticket.id,
        filters=filters,
        cursor=query.get("cursor"),
        limit=page_limit(query),
        newest_first=True,
    )
    return {"items": page.items, "next_cursor": page.next_cursor}


@bp.route("/tickets/search", methods=["GET"])
@bp.arguments(SearchQuerySchema, location="query")
@bp.response(200, PartnerSearchPageSchema)
def search_tickets(query: dict[str, Any]) -> search.SearchPage:
    """Find your tickets by words in their title, description or messages

    Best match first; each item has the ticket and its `highlights`: where it
    matched, as plain text with the `ranges` of the matched words. Follow
    `next_cursor` for more.
    """
    return search.search_page(
        _actor(), query["q"], cursor=query.get("cursor"), limit=page_limit(query)
    )


@bp.route("/tickets/<id:ticket_id>", methods=["GET"])
@bp.response(200, PartnerTicketSchema)
def get_ticket(ticket_id: int) -> Ticket:
    """Get one of your tickets"""
    return tickets.partner_ticket(_actor(), ticket_id)


@bp.route("/tickets/<id:ticket_id>/close", methods=["POST"])
@bp.response(200, PartnerTicketSchema)
@bp.error(409, "Already closed")
def close_ticket(ticket_id: int) -> Ticket:
    """Close your ticket"""
    actor = _actor()
    ticket = tickets.partner_ticket(actor, ticket_id)
    tickets.change_status(ticket, "closed", actor, PARTNER_TRANSITIONS)
    tickets.commit()
    return ticket


@bp.route("/tickets/<id:ticket_id>/reopen", methods=["POST"])
@bp.response(200, PartnerTicketSchema)
@bp.error(409, "Not resolved or closed")
def reopen_ticket(ticket_id: int) -> Ticket:
    """Reopen your resolved or closed ticket"""
    actor = _actor()
    ticket = tickets.partner_ticket(actor, ticket_id)
    tickets.change_status(ticket, "open", actor, PARTNER_TRANSITIONS)
    tickets.commit()
    return ticket


# ------------------------------------------------------------------ messages


@bp.route("/tickets/<id:ticket_id>/messages", methods=["GET"])
@bp.arguments(PageQuerySchema, location="query")
@bp.response(200, PartnerMessagePageSchema)
def list_messages(query: dict[str, Any], ticket_id: int) -> dict[str, Any]:
    """List the messages on your ticket, oldest first (never staff's internal notes)

    Follow `next_cursor` for more.
    """
    ticket = tickets.partner_ticket(_actor(), ticket_id)
    page = paginate_ticket_rows(
        Message, ticket.id, internal=False, cursor=query.get("cursor"), limit=page_limit(query)
    )
    return {"items": page.items, "next_cursor": page.next_cursor}


@bp.route("/tickets/<id:ticket_id>/messages", methods=["POST"])
@bp.arguments(PartnerMessageCreateSchema)
@bp.response(201, PartnerMessageSchema)
@bp.error(409, "The ticket is closed")
def post_message(data: dict[str, Any], ticket_id: int) -> Message:
    """Write to support on your ticket"""
    actor = _actor()
    ticket = tickets.partner_ticket(actor, ticket_id)
    message = tickets.post_message(ticket, actor, data["body"])
    tickets.commit()
    return message


# ------------------------------------------------------------------ attachments


@bp.route("/tickets/<id:ticket_id>/attachments", methods=["GET"])
@bp.arguments(PageQuerySchema, location="query")
@bp.response(200, PartnerAttachmentPageSchema)
def list_attachments(query: dict[str, Any], ticket_id: int) -> dict[str, Any]:
    """List the files attached to your ticket, oldest first

    Follow `next_cursor` for more.
    """
    ticket = tickets.partner_ticket(_actor(), ticket_id)
    page = paginate_ticket_rows(
        Attachment, ticket.id, internal=False, cursor=query.get("cursor"), limit=page_limit(query)
    )
    return {"items": page.items, "next_cursor": page.next_cursor}


@bp.route("/tickets/<id:ticket_id>/attachments", methods=["POST"])
@accepts_upload
@bp.arguments(PartnerUploadSchema, location="multipart")
@bp.response(201, PartnerAttachmentSchema)
@bp.error(409, "The ticket is closed")
@bp.error(413, "The file is larger than allowed")
@bp.error(415, "Files of this type cannot be attached")
def upload_attachment(form: dict[str, Any], ticket_id: int) -> tuple[Attachment, int]:
    """Attach a file to your ticket (multipart/form-data, field `file`)"""
    actor = _actor()
    ticket = tickets.partner_ticket(actor, ticket_id)
    return store_attachment(ticket, actor, form["file"], internal=False), 201


@bp.route("/tickets/<id:ticket_id>/attachments/<id:attachment_id>", methods=["GET"])
@bp.response(200, description="The file, as a download", content_type="application/octet-stream")
def download_attachment(ticket_id: int, attachment_id: int) -> Response:
    """Download a file attached to your ticket"""
    actor = _actor()
    ticket = tickets.partner_ticket(actor, ticket_id)
    attachment = tickets.ticket_attachment(actor, ticket, attachment_id)
    return send_attachment(attachment)
