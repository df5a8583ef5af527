"""What can happen to a ticket: creation, status changes, triage, messages.

The API views call these functions and commit once at the end, so a request
either changes everything it meant to or nothing. Each function:

- records every change in the audit trail (``TicketAudit``; automatic
  decisions with actor kind ``system``);
- sends the matching signal from ``ticketing.signals`` inside the transaction,
  before the commit, so receivers' rows (outbox, live feed) commit with it;
- counts metrics only once the transaction has committed (``after_commit``).

    ticket = create_ticket(actor, title="Invoice missing", description="...")
    change_status(ticket, "resolved", staff_actor)
    db.session.commit(); run_after_commit()        # (views use ``commit()``)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import insert

from ticketing import signals
from ticketing.auth import Actor
from ticketing.db import db, execute_core, insert_row, load_row, update_columns
from ticketing.desk import search, sla
from ticketing.desk.classifier import model_of
from ticketing.desk.metrics import after_commit, desk_metrics, run_after_commit
from ticketing.desk.settings import CoreSettings
from ticketing.desk.triage import Classifier
from ticketing.desk.workflow import TRANSITIONS, check_transition, counts_as_resolution, is_reopen
from ticketing.errors import ApiError, not_found
from ticketing.models import Attachment, Message, Staff, Ticket, TicketAudit, utcnow

_AUDIT = db.metadata.tables[TicketAudit.__tablename__]
# With RETURNING, several rows go in one statement ("insertmanyvalues") whose
# compiled form is cached; a multi-row ``.values([...])`` is compiled anew each time.
_INSERT_AUDIT = insert(_AUDIT).returning(_AUDIT.c.id)


def settings() -> CoreSettings:
    found: CoreSettings = current_app.extensions["ticketing"]
    return found


def classifier() -> Classifier:
    found = current_app.extensions.get("ticketing_classifier")
    if found is None:
        model, model_settings = model_of(current_app)
        found = current_app.extensions["ticketing_classifier"] = Classifier(
            settings().classification, model, model_settings
        )
    return found


def commit() -> None:
    """Commit the request's transaction, then count what it did."""
    db.session.commit()
    run_after_commit()


# ------------------------------------------------------------------ finding tickets


def deny(actor: Actor, resource: str, resource_id: int, what: str) -> ApiError:
    """Report an attempt to reach someone else's ``resource`` and return the plain 404.

    The signal's receivers (the security monitor) commit with it, although the
    request itself fails.
    """
    signals.access_denied.send(
        signals.sender(), actor=actor, resource=resource, resource_id=resource_id
    )
    db.session.commit()
    return not_found(what)


def partner_ticket(actor: Actor, ticket_id: int) -> Ticket:
    """The partner's own ticket; 404 when it does not exist *or* is another partner's."""
    ticket = load_row(Ticket, ticket_id)
    if ticket is None:
        raise not_found("ticket")
    if ticket.partner_id != actor.id:
        raise deny(actor, "ticket", ticket_id, "ticket")
    return ticket


def staff_ticket(ticket_id: int) -> Ticket:
    ticket = load_row(Ticket, ticket_id)
    if ticket is None:
        raise not_found("ticket")
    return ticket


def ticket_attachment(actor: Actor, ticket: Ticket, attachment_id: int) -> Attachment:
    """An attachment of ``ticket`` the actor may see (partners: not internal), else 404."""
    attachment = db.session.get(Attachment, attachment_id)
    if attachment is None:
        raise not_found("attachment")
    if attachment.ticket_id != ticket.id or (actor.is_partner and attachment.internal):
        if actor.is_partner:
            raise deny(actor, "attachment", attachment_id, "attachment")
        raise not_found("attachment")
    return attachment


#: What a ticket lists: its messages, attachments, audit trail.
Listed = TypeVar("Listed", Message, Attachment, TicketAudit)


def ticket_rows(model: type[Listed], ticket: Ticket, *, internal: bool = True) -> Sequence[Listed]:
    """The ticket's messages, attachments or audit entries, oldest first.

    ``internal=False`` leaves out staff's internal notes and internal
    attachments (what partners may see).
    """
    stmt = db.select(model).where(model.ticket_id == ticket.id)
    if not internal:
        stmt = stmt.where(model.__table__.c.internal.is_(False))
    return db.session.execute(stmt.order_by(model.id)).scalars().all()


# ------------------------------------------------------------------ audit


def audit(
    ticket: Ticket,
    actor: Actor | None,
    field: str,
    before: object,
    after: object,
    reason: str | None = None,
    at: datetime | None = None,
) -> None:
    """Record one change; ``actor`` None means an automatic (``system``) decision."""
    write_audit(ticket, [audit_entry(actor, field, before, after, reason, at)])


def audit_entry(
    actor: Actor | None,
    field: str,
    before: object,
    after: object,
    reason: str | None = None,
    at: datetime | None = None,
    confidence: float | None = None,
) -> dict[str, Any]:
    """One entry of the audit trail (a ``ticket_audit`` row but its ticket), for
    :func:`write_audit`; ``actor`` None means an automatic (``system``) decision,
    whose ``confidence`` (the category model's probability) it may carry."""
    return {
        "actor_kind": actor.kind if actor else "system",
        "actor_id": actor.id if actor else None,
        "field": field,
        "before": None if before is None else str(before),
        "after": None if after is None else str(after),
        "reason": reason,
        "confidence": confidence,
        "at": at or utcnow(),
    }


def write_audit(ticket: Ticket, entries: list[dict[str, Any]]) -> None:
    """Add ``entries`` to the audit trail of ``ticket`` (which has an id), in one statement.

    The rows are written at once, in the request's transaction (they commit
    or roll back with it), without building an ORM object for each: one
    ``INSERT`` with a row of values per entry (not one statement per entry).
    """
    execute_core(_INSERT_AUDIT, [{"ticket_id": ticket.id, **e} for e in entries])


def _changed(
    ticket: Ticket,
    field: str,
    before: object,
    after: object,
    actor: Actor,
    now: datetime,
    reason: str | None = None,
) -> None:
    audit(ticket, actor, field, before, after, reason, at=now)
    ticket.updated_at = now
    signals.ticket_changed.send(
        signals.sender(), ticket=ticket, field=field, before=before, after=after, actor=actor
    )


# ------------------------------------------------------------------ creation


def create_ticket(
    actor: Actor,
    *,
    title: str,
    description: str,
    priority: str | None = None,
    category: str | None = None,
) -> Ticket:
    """A partner's new ticket, with priority raised and category chosen by the rules."""
    now = utcnow()
    decision = classifier().classify(title, description, priority)
    ticket = Ticket(
        partner_id=actor.id,
        title=title,
        description=description,
        category=category or decision.category,
        priority=decision.priority,
        status="open",
        created_at=now,
        updated_at=now,
        category_confidence=None if category else decision.category_confidence,
        needs_triage=not category and decision.needs_triage,
    )
    sla.apply(settings().sla, ticket)
    insert_row(ticket)  # its id, for the audit trail and the signal's receivers
    search.index_ticket(ticket)  # searchable once committed, in the same transaction

    initial = priority or settings().classification.default_priority
    entries = [
        audit_entry(actor, "status", None, "open", "ticket created", at=now),
        audit_entry(
            actor if priority else None,
            "priority",
            None,
            initial,
            "requested by partner" if priority else "default priority",
            at=now,
        ),
    ]
    rule_priority = decision.rule_priority or decision.priority
    if decision.rule_reason:
        entries.append(
            audit_entry(None, "priority", initial, rule_priority, decision.rule_reason, at=now)
        )
    if decision.priority_model_reason:  # the priority model's decision, raised or not
        entries.append(
            audit_entry(
                None,
                "priority",
                rule_priority,
                decision.priority,
                decision.priority_model_reason,
                at=now,
                confidence=decision.priority_confidence,
            )
        )
    if category:
        entries.append(audit_entry(actor, "category", None, category, "chosen by partner", at=now))
    else:
        entries.append(
            audit_entry(
                None,
                "category",
                None,
                decision.category,
                decision.category_reason,
                at=now,
                confidence=decision.category_confidence,
            )
        )
        if decision.needs_triage:
            entries.append(
                audit_entry(
                    None,
                    "needs_triage",
                    None,
                    True,
                    "category confidence below classifier.triage_below",
                    at=now,
                    confidence=decision.category_confidence,
                )
            )
    write_audit(ticket, entries)

    signals.ticket_created.send(signals.sender(), ticket=ticket)
    labels = (ticket.priority, ticket.category)
    created = desk_metrics().tickets_created
    after_commit(lambda: created.labels(*labels).inc())
    return ticket


# ------------------------------------------------------------------ changes


def change_status(
    ticket: Ticket, target: str, actor: Actor, table: dict[str, tuple[str, ...]] = TRANSITIONS
) -> None:
    """Move ``ticket`` to ``target`` if ``table`` allows it (else 409 listing what is allowed)."""
    current = ticket.status
    check_transition(current, target, table)
    now = utcnow()
    if target == "resolved":
        ticket.resolved_at = now
        ticket.closed_at = None
    elif target == "closed":
        ticket.closed_at = now
    elif is_reopen(current, target):
        ticket.resolved_at = None
        ticket.closed_at = None
    ticket.status = target
    reason = "reopened" if is_reopen(current, target) else None
    _changed(ticket, "status", current, target, actor, now, reason)
    if counts_as_resolution(current, target):
        seconds = (now - ticket.created_at).total_seconds()
        priority = ticket.priority
        resolution = desk_metrics().resolution
        after_commit(lambda: resolution.labels(priority).observe(seconds))


def set_priority(ticket: Ticket, priority: str, actor: Actor) -> bool:
    """Staff override of the priority; moves the SLA due times. False when unchanged."""
    if priority == ticket.priority:
        return False
    before = ticket.priority
    ticket.priority = priority
    sla.apply(settings().sla, ticket)
    _changed(ticket, "priority", before, priority, actor, utcnow(), "staff override")
    return True


def set_category(ticket: Ticket, category: str, actor: Actor) -> bool:
    """Staff override (or confirmation) of the category; either ends the ticket's
    triage. False when nothing changed."""
    now = utcnow()
    triaged = ticket.needs_triage
    if triaged:
        ticket.needs_triage = False
        _changed(
            ticket,
            "needs_triage",
            True,
            False,
            actor,
            now,
            "category confirmed by staff"
            if category == ticket.category
            else "category set by staff",
        )
    if category == ticket.category:
        return triaged
    before = ticket.category
    ticket.category = category
    _changed(ticket, "category", before, category, actor, now, "staff override")
    return True


def assign(ticket: Ticket, assignee_id: int | None, actor: Actor) -> bool:
    """Set the assignee (None: nobody). Agents may only take a ticket or let it go;
    admins may assign anyone. False when unchanged."""
    if not actor.is_admin and assignee_id not in (None, actor.id):
        raise ApiError(
            403,
            "forbidden",
            "agents may only assign tickets to themselves",
            details={"assignee_id": assignee_id},
        )
    if not actor.is_admin and assignee_id is None and ticket.assignee_id not in (None, actor.id):
        raise ApiError(403, "forbidden", "agents may only unassign their own tickets")
    if assignee_id is not None:
        staff = db.session.get(Staff, assignee_id)
        if staff is None or not staff.active:
            raise ApiError(
                422,
                "validation_error",
                "the request is not valid",
                details={
                    "fields": {"json": {"assignee_id": ["No active staff member with this id."]}}
                },
            )
    if assignee_id == ticket.assignee_id:
        return False
    before = ticket.assignee_id
    ticket.assignee_id = assignee_id
    _changed(ticket, "assignee_id", before, assignee_id, actor, utcnow())
    return True


# ------------------------------------------------------------------ messages


def check_open(ticket: Ticket, to: str) -> None:
    """409 ``ticket_closed`` when ``ticket`` is closed: it must be reopened ``to`` (reply,
    attach files)."""
    if ticket.status == "closed":
        raise ApiError(
            409,
            "ticket_closed",
            f"the ticket is closed; reopen it to {to}",
            details={"status": ticket.status},
        )


def post_message(ticket: Ticket, actor: Actor, body: str, internal: bool = False) -> Message:
    """Add a message. The first public staff reply is the ticket's first response."""
    if internal and not actor.is_staff:
        raise ApiError(403, "forbidden", "only staff can add internal notes")
    if not internal:
        check_open(ticket, "reply")
    now = utcnow()
    message = Message(
        ticket_id=ticket.id,
        sender_type=actor.kind,
        sender_id=actor.id,
        body=body,
        internal=internal,
        created_at=now,
    )
    insert_row(message)
    search.index_message(message)
    changes: dict[str, datetime] = {}
    if not internal:
        changes["updated_at"] = now
    if actor.is_staff and not internal and ticket.first_response_at is None:
        changes["first_response_at"] = now
        audit(
            ticket,
            actor,
            "first_response_at",
            None,
            now.isoformat() + "Z",
            "first public reply",
            at=now,
        )
        seconds = (now - ticket.created_at).total_seconds()
        priority = ticket.priority
        first_response = desk_metrics().first_response
        after_commit(lambda: first_response.labels(priority).observe(seconds))
    if changes:
        update_columns(ticket, **changes)
    signals.message_posted.send(signals.sender(), ticket=ticket, message=message)
    sender_type = actor.kind
    messages = desk_metrics().messages
    after_commit(lambda: messages.labels(sender_type).inc())
    return message
