"""Request and response schemas: they validate input and document the API.

Input schemas refuse unknown fields (marshmallow's RAISE), wrong types, bad
enum values and oversize text; their errors are answered as 422 with the
problems per location and field under ``error.details.fields``.

Response schemas derive from :class:`~ticketing.api.dumping.FastDumpSchema`:
the same output as marshmallow's ``dump``, compiled once per schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from datetime import datetime
from typing import Any

import marshmallow as ma
from marshmallow import validate
from webargs.fields import DelimitedList

from ticketing.api.dumping import FastDumpSchema
from ticketing.api.fields import (
    File,
    FormBoolean,
    Id,
    QueryAssignee,
    QueryBoolean,
    QueryId,
    QueryInteger,
    StrictBoolean,
    Text,
    UtcDateTime,
)
from ticketing.desk import search, sla
from ticketing.desk.choices import CATEGORIES, PRIORITIES, SENDER_TYPES, STATUSES
from ticketing.models import Ticket, utcnow

TITLE_MAX = 200
TEXT_MAX = 20000


class StrictSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE


def _enum(choices: Sequence[str], **kwargs: Any) -> ma.fields.String:
    return ma.fields.String(validate=validate.OneOf(choices), **kwargs)


# ------------------------------------------------------------------ tickets


class TicketCreateSchema(StrictSchema):
    title = Text(
        required=True,
        max_length=TITLE_MAX,
        single_line=True,
        metadata={"example": "Transactions failing with 503"},
    )
    description = Text(
        required=True,
        max_length=TEXT_MAX,
        metadata={"example": "Since 09:00 UTC every POST /transactions fails."},
    )
    priority = _enum(
        PRIORITIES,
        metadata={"description": "requested priority (default from config); rules may raise it"},
    )
    category = _enum(
        CATEGORIES,
        metadata={"description": "chosen category; when absent it is classified from the text"},
    )


#: The moment a response's tickets are judged overdue at (one for the whole response).
_judged_at: ContextVar[datetime | None] = ContextVar("ticketing_judged_at", default=None)


class _AtOneInstant(FastDumpSchema):
    """Dumps every ticket of one response against the same "now" (and reads the clock once)."""

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        if _judged_at.get() is not None:
            return super().dump(obj, many=many)
        token = _judged_at.set(utcnow())
        try:
            return super().dump(obj, many=many)
        finally:
            _judged_at.reset(token)


def _now() -> datetime:
    return _judged_at.get() or utcnow()


class PartnerTicketSchema(_AtOneInstant):
    """A ticket as its partner sees it."""

    id = ma.fields.Integer(required=True)
    title = ma.fields.String(required=True)
    description = ma.fields.String(required=True)
    category = _enum(CATEGORIES, required=True)
    status = _enum(STATUSES, required=True)
    priority = _enum(PRIORITIES, required=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)
    first_response_at = UtcDateTime(allow_none=True)
    first_response_due_at = UtcDateTime(allow_none=True)
    resolution_due_at = UtcDateTime(allow_none=True)
    resolved_at = UtcDateTime(allow_none=True)
    closed_at = UtcDateTime(allow_none=True)
    first_response_overdue = ma.fields.Method(
        "_first_response_overdue", metadata={"type": "boolean"}
    )
    resolution_overdue = ma.fields.Method("_resolution_overdue", metadata={"type": "boolean"})
    overdue = ma.fields.Method("_overdue", metadata={"type": "boolean"})
    sla_paused = ma.fields.Method(
        "_sla_paused",
        metadata={
            "type": "boolean",
            "description": "the SLA clock stands still: the ticket's incident is open "
            "(it is never overdue meanwhile)",
        },
    )
    sla_paused_seconds = ma.fields.Method(
        "_sla_paused_seconds",
        metadata={
            "type": "integer",
            "description": "how long the clock has stood still in all; the due times "
            "move by the pauses that ended",
        },
    )
    incident = ma.fields.Method(
        "_incident",
        metadata={
            "type": "object",
            "nullable": True,
            "description": "the published incident this ticket is linked to (a known "
            "platform problem): `id`, `name`, `status`, `impact`, `shortlink`; null: none",
        },
    )

    def _sla_paused(self, ticket: Ticket) -> bool:
        return ticket.sla_paused_at is not None

    def _sla_paused_seconds(self, ticket: Ticket) -> int:
        return sla.paused_seconds(ticket, _now())

    def _incident(self, ticket: Ticket) -> dict[str, Any] | None:
        if ticket.incident_id is None:
            return None
        from ticketing.status.incident_tickets import linked_incident

        return linked_incident(ticket.incident_id)

    def _first_response_overdue(self, ticket: Ticket) -> bool:
        return ticket.first_response_overdue(_now())

    def _resolution_overdue(self, ticket: Ticket) -> bool:
        return ticket.resolution_overdue(_now())

    def _overdue(self, ticket: Ticket) -> bool:
        now = _now()
        return ticket.first_response_overdue(now) or ticket.resolution_overdue(now)


class StaffTicketSchema(PartnerTicketSchema):
    """A ticket as support staff see it: with its partner and assignee."""

    partner_id = ma.fields.Integer(required=True)
    assignee_id = ma.fields.Integer(allow_none=True)
    category_confidence = ma.fields.Float(
        allow_none=True,
        metadata={
            "description": "the probability the category model gave the automatic category "
            "(null: chosen by the partner, or no model)"
        },
    )
    needs_triage = ma.fields.Boolean(
        required=True,
        metadata={
            "description": "the automatic category was less confident than "
            "classifier.triage_below; setting the category (PATCH) ends it"
        },
    )
    incident_id = ma.fields.Integer(
        allow_none=True,
        metadata={"description": "the incident this ticket is linked to (draft ones too)"},
    )


class PartnerTicketPageSchema(_AtOneInstant):
    items = ma.fields.List(ma.fields.Nested(PartnerTicketSchema), required=True)
    next_cursor = ma.fields.String(
        allow_none=True,
        required=True,
        metadata={"description": "pass as `cursor` for the next page; null on the last page"},
    )


class StaffTicketPageSchema(_AtOneInstant):
    items = ma.fields.List(ma.fields.Nested(StaffTicketSchema), required=True)
    next_cursor = ma.fields.String(allow_none=True, required=True)


def _filter(choices: Sequence[str]) -> DelimitedList:
    """A list filter (``?status=open,in_progress``): one value at least, each a known one.

    (``?status=`` or ``?status=open,`` is a 422, not a filter that matches nothing.)
    """
    return DelimitedList(
        _enum(choices),
        validate=validate.Length(min=1, error="Give at least one value."),
        metadata={"description": "comma-separated, one value at least"},
    )


class PageQuerySchema(StrictSchema):
    """A page of a list: every list answers ``{"items": [...], "next_cursor": ...}``."""

    cursor = ma.fields.String(
        validate=validate.Length(min=1, max=512),
        metadata={"description": "`next_cursor` of the previous page"},
    )
    limit = QueryInteger(
        validate=validate.Range(min=1, max=1000),
        metadata={"description": "page size (default and maximum from config: 25 and 100)"},
    )


class _ListQuery(PageQuerySchema):
    status = _filter(STATUSES)
    priority = _filter(PRIORITIES)
    category = _filter(CATEGORIES)


class PartnerTicketQuerySchema(_ListQuery):
    pass


class StaffQueueQuerySchema(_ListQuery):
    partner_id = QueryId()
    incident_id = QueryId(
        metadata={"description": "only the tickets linked to this status incident"}
    )
    assignee = QueryAssignee(
        metadata={"description": "`me`, `none` (unassigned) or a staff id"},
    )
    overdue = QueryBoolean(
        metadata={
            "description": "true: only tickets past a first-response or resolution due time; "
            "false: only those that are not"
        }
    )
    order = _enum(
        ("oldest", "newest", "due"),
        metadata={"description": "default: oldest first; `due`: the next SLA due time first"},
    )
    needs_triage = QueryBoolean(
        metadata={
            "description": "true: only tickets whose automatic category needs checking; "
            "false: only those that do not"
        }
    )


# ------------------------------------------------------------------ messages


class PartnerMessageCreateSchema(StrictSchema):
    body = Text(required=True, max_length=TEXT_MAX)


class StaffMessageCreateSchema(StrictSchema):
    body = Text(required=True, max_length=TEXT_MAX)
    internal = StrictBoolean(
        load_default=False, metadata={"description": "an internal note, never shown to the partner"}
    )


class PartnerMessageSchema(FastDumpSchema):
    id = ma.fields.Integer(required=True)
    ticket_id = ma.fields.Integer(required=True)
    sender_type = _enum(SENDER_TYPES, required=True)
    body = ma.fields.String(required=True)
    created_at = UtcDateTime(required=True)


class StaffMessageSchema(PartnerMessageSchema):
    sender_id = ma.fields.Integer(required=True)
    internal = ma.fields.Boolean(required=True)


def _next_cursor() -> ma.fields.String:
    return ma.fields.String(
        allow_none=True,
        required=True,
        metadata={"description": "pass as `cursor` for the next page; null on the last page"},
    )


class PartnerMessagePageSchema(FastDumpSchema):
    items = ma.fields.List(ma.fields.Nested(PartnerMessageSchema), required=True)
    next_cursor = _next_cursor()


class StaffMessagePageSchema(FastDumpSchema):
    items = ma.fields.List(ma.fields.Nested(StaffMessageSchema), required=True)
    next_cursor = _next_cursor()


# ------------------------------------------------------------------ attachments


class PartnerUploadSchema(StrictSchema):
    file = File(
        required=True,
        metadata={"description": "the file (its part's Content-Type must be an allowed type)"},
    )


class StaffUploadSchema(PartnerUploadSchema):
    internal = FormBoolean(
        load_default=False, metadata={"description": "`true`: only staff can see the file"}
    )


class PartnerAttachmentSchema(FastDumpSchema):
    id = ma.fields.Integer(required=True)
    ticket_id = ma.fields.Integer(required=True)
    filename = ma.fields.String(required=True)
    content_type = ma.fields.String(required=True)
    size = ma.fields.Integer(required=True)
    sha256 = ma.fields.String(required=True)
    uploader_type = _enum(SENDER_TYPES, required=True)
    created_at = UtcDateTime(required=True)


class StaffAttachmentSchema(PartnerAttachmentSchema):
    uploader_id = ma.fields.Integer(required=True)
    internal = ma.fields.Boolean(required=True)


class PartnerAttachmentPageSchema(FastDumpSchema):
    items = ma.fields.List(ma.fields.Nested(PartnerAttachmentSchema), required=True)
    next_cursor = _next_cursor()


class StaffAttachmentPageSchema(FastDumpSchema):
    items = ma.fields.List(ma.fields.Nested(StaffAttachmentSchema), required=True)
    next_cursor = _next_cursor()


# ------------------------------------------------------------------ staff triage


class AssignSchema(StrictSchema):
    assignee_id = Id(
        required=True, allow_none=True, metadata={"description": "staff id, or null to unassign"}
    )


class StatusChangeSchema(StrictSchema):
    status = _enum(STATUSES, required=True)


class TriageSchema(StrictSchema):
    """At least one of the two: ``{}`` changes nothing and is refused (422), as the
    document says (``minProperties: 1``)."""

    #: Added to the schema's OpenAPI object (:class:`ticketing.api.openapi.SchemaConverter`).
    json_schema_extra = {"minProperties": 1}

    priority = _enum(PRIORITIES)
    category = _enum(CATEGORIES)

    @ma.validates_schema
    def _something(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ma.ValidationError("Give priority, category or both.", "_schema")


class AuditEntrySchema(FastDumpSchema):
    id = ma.fields.Integer(required=True)
    actor_kind = _enum(("partner", "staff", "system"), required=True)
    actor_id = ma.fields.Integer(allow_none=True)
    field = ma.fields.String(required=True)
    before = ma.fields.String(allow_none=True)
    after = ma.fields.String(allow_none=True)
    reason = ma.fields.String(allow_none=True)
    confidence = ma.fields.Float(
        allow_none=True,
        metadata={"description": "automatic category decisions: the model's probability for it"},
    )
    at = UtcDateTime(required=True)


class AuditPageSchema(FastDumpSchema):
    items = ma.fields.List(ma.fields.Nested(AuditEntrySchema), required=True)
    next_cursor = _next_cursor()


class IdempotencyHeaderSchema(ma.Schema):
    idempotency_key = ma.fields.String(
        data_key="Idempotency-Key",
        validate=validate.Regexp(
            r"^[\x21-\x7e]{1,255}$", error="Must be 1 to 255 printable ASCII characters."
        ),
        metadata={
            "description": "retrying with the same key and body returns the same "
            "ticket instead of creating another"
        },
    )


# ------------------------------------------------------------------ search


def _search_words(value: str) -> None:
    try:
        search.words(value)
    except ValueError as exc:
        raise ma.ValidationError(str(exc)) from None


class SearchQuerySchema(PageQuerySchema):
    q = ma.fields.String(
        required=True,
        validate=[validate.Length(min=1, max=search.MAX_QUERY_LENGTH), _search_words],
        metadata={
            "description": f"the words to find (at most {search.MAX_WORDS}); each word is "
            "found as written, punctuation included (`tx-8f3a-19`, `ops@acme.io`), "
            "and a ticket matches when it holds every word",
            "example": "invoice tx-8f3a-19",
        },
    )


class PartnerHighlightSchema(FastDumpSchema):
    """Where a ticket matched the search, with the matched words' places."""

    field = _enum(
        ("title", "partner", "description", "message"),
        required=True,
        metadata={
            "description": "what matched: the title, the partner's name, the "
            "description or a message"
        },
    )
    message_id = ma.fields.Integer(
        allow_none=True, required=True, metadata={"description": "the message that matched"}
    )
    text = ma.fields.String(
        required=True,
        metadata={
            "description": "plain text: the whole title or name, or a snippet of the "
            "description or message (`…` where it is cut)"
        },
    )
    ranges = ma.fields.List(
        ma.fields.List(ma.fields.Integer(), validate=validate.Length(equal=2)),
        required=True,
        metadata={
            "description": "the matched words in `text`: [start, end) offsets in Unicode "
            "code points, in order, never overlapping"
        },
    )


class StaffHighlightSchema(PartnerHighlightSchema):
    internal = ma.fields.Boolean(
        required=True, metadata={"description": "the message is an internal note"}
    )


class PartnerSearchHitSchema(_AtOneInstant):
    ticket = ma.fields.Nested(PartnerTicketSchema, required=True)
    highlights = ma.fields.List(ma.fields.Nested(PartnerHighlightSchema), required=True)


class StaffSearchHitSchema(_AtOneInstant):
    ticket = ma.fields.Nested(StaffTicketSchema, required=True)
    highlights = ma.fields.List(ma.fields.Nested(StaffHighlightSchema), required=True)


class PartnerSearchPageSchema(_AtOneInstant):
    items = ma.fields.List(
        ma.fields.Nested(PartnerSearchHitSchema),
        required=True,
        metadata={"description": "the matching tickets, best match first"},
    )
    next_cursor = _next_cursor()


class StaffSearchPageSchema(_AtOneInstant):
    items = ma.fields.List(
        ma.fields.Nested(StaffSearchHitSchema),
        required=True,
        metadata={"description": "the matching tickets, best match first"},
    )
    next_cursor = _next_cursor()


# ------------------------------------------------------------------ bulk work

BULK_MAX = 500


class BulkSchema(StrictSchema):
    """One change to many tickets, each with the rules of the single-ticket route."""

    ticket_ids = ma.fields.List(
        Id(),
        required=True,
        validate=validate.Length(min=1, max=BULK_MAX),
        metadata={"description": f"the tickets to change (1 to {BULK_MAX})"},
    )
    action = _enum(
        ("assign", "status", "priority", "link", "unlink"),
        required=True,
        metadata={
            "description": "`assign` (value: a staff id, or null), `status` (a status), "
            "`priority` (a priority), `link` (an incident id), `unlink` (no value)"
        },
    )
    value = ma.fields.Raw(allow_none=True, metadata={"description": "what the action sets"})


class BulkResultSchema(FastDumpSchema):
    id = ma.fields.Integer(required=True)
    result = _enum(
        ("changed", "unchanged", "refused", "not_found"),
        required=True,
        metadata={"description": "refused: the single-ticket route would have refused it too"},
    )
    error = ma.fields.Dict(
        allow_none=True, metadata={"description": "the error the single-ticket route would give"}
    )


class BulkResultPageSchema(FastDumpSchema):
    items = ma.fields.List(ma.fields.Nested(BulkResultSchema), required=True)
    next_cursor = _next_cursor()
