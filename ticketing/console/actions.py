"""The ticket page's forms: reply or note, assign, change status, triage, and its
incident (link, unlink, dismiss a suggestion).

Each form is validated by the staff API's schema and applied by the domain
function the staff API calls; a refusal re-renders the ticket with its reason
(and the typed text) and the refusal's status.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import marshmallow as ma
from flask import current_app, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue

from ticketing.api.schemas import (
    AssignSchema,
    StaffMessageCreateSchema,
    StatusChangeSchema,
    TriageSchema,
)
from ticketing.auth import Actor
from ticketing.console.blueprint import bp, problems_text, signed_in_staff
from ticketing.console.ticket_page import ticket_page
from ticketing.db import MAX_ID, db, id_from_text
from ticketing.desk import tickets
from ticketing.errors import ApiError
from ticketing.models import Ticket

#: ``apply(ticket, loaded, actor)``: makes the change the form asked for.
Apply = Callable[[Ticket, dict[str, Any], Actor], None]


def _change(
    ticket_id: int,
    schema: ma.Schema,
    data: dict[str, Any],
    apply: Apply,
    done: str | Callable[[], str],
    draft: str = "",
) -> ResponseReturnValue:
    """Validate ``data`` with the API's ``schema``, ``apply(ticket, loaded, actor)``, commit,
    say ``done`` (or what ``done()`` says, after the change); a refusal re-renders the
    ticket with its reason (and the typed text)."""
    actor = signed_in_staff()
    ticket = tickets.staff_ticket(ticket_id)
    try:
        loaded = schema.load(data)
        apply(ticket, loaded, actor)
        tickets.commit()
    except ma.ValidationError as exc:
        db.session.rollback()
        return ticket_page(
            tickets.staff_ticket(ticket_id),
            422,
            error="Not saved: " + problems_text(exc.messages),
            draft=draft,
        )
    except ApiError as exc:
        db.session.rollback()
        return ticket_page(
            tickets.staff_ticket(ticket_id), exc.status, error=_explain(exc), draft=draft
        )
    flash(done() if callable(done) else done, "success")
    return redirect(url_for("console.ticket", ticket_id=ticket_id), 303)


def _explain(error: ApiError) -> str:
    message = error.message[:1].upper() + error.message[1:] + "."
    if error.code == "invalid_transition":
        allowed = error.details.get("allowed") or []
        message += (
            (" From here it can go to: " + ", ".join(s.replace("_", " ") for s in allowed) + ".")
            if allowed
            else ""
        )
    return message


@bp.post("/tickets/<id:ticket_id>/messages")
def post_message(ticket_id: int) -> ResponseReturnValue:
    body = request.form.get("body", "").replace("\r\n", "\n")
    internal = request.form.get("kind") == "note"

    def apply(ticket: Ticket, data: dict[str, Any], actor: Actor) -> None:
        tickets.post_message(ticket, actor, data["body"], internal=data["internal"])

    return _change(
        ticket_id,
        StaffMessageCreateSchema(),
        {"body": body, "internal": internal},
        apply,
        "Internal note added." if internal else "Reply sent to the partner.",
        draft=body,
    )


@bp.post("/tickets/<id:ticket_id>/assign")
def assign(ticket_id: int) -> ResponseReturnValue:
    # An admin's form sends the dropdown's choice and, when "Assign to me" was the button
    # pressed, the button's value after it: the pressed button wins.
    choices = request.form.getlist("assignee")
    choice = "me" if "me" in choices else (choices[0] if choices else "")
    actor = signed_in_staff()
    value: Any = (
        actor.id if choice == "me" else None if choice == "none" else id_from_text(choice) or choice
    )

    def apply(ticket: Ticket, data: dict[str, Any], actor: Actor) -> None:
        tickets.assign(ticket, data["assignee_id"], actor)

    return _change(ticket_id, AssignSchema(), {"assignee_id": value}, apply, "Assignee updated.")


@bp.post("/tickets/<id:ticket_id>/status")
def change_status(ticket_id: int) -> ResponseReturnValue:
    def apply(ticket: Ticket, data: dict[str, Any], actor: Actor) -> None:
        tickets.change_status(ticket, data["status"], actor)

    target = request.form.get("status", "")
    return _change(
        ticket_id,
        StatusChangeSchema(),
        {"status": target},
        apply,
        f"Status changed to {target.replace('_', ' ')}.",
    )


@bp.post("/tickets/<id:ticket_id>/triage")
def triage(ticket_id: int) -> ResponseReturnValue:
    """Priority and category; setting the category (the same one confirms it) ends the
    ticket's triage, through the staff API's ``tickets.set_category``."""
    data = {name: request.form[name] for name in ("priority", "category") if request.form.get(name)}
    triaged: list[str] = []

    def apply(ticket: Ticket, data: dict[str, Any], actor: Actor) -> None:
        if "priority" in data:
            tickets.set_priority(ticket, data["priority"], actor)
        if "category" in data:
            was_marked = ticket.needs_triage
            tickets.set_category(ticket, data["category"], actor)
            if was_marked and not ticket.needs_triage:
                triaged.append(data["category"])

    def done() -> str:
        if triaged:
            return f"Category {triaged[0]} confirmed: the ticket no longer needs triage."
        return "Priority and category saved."

    return _change(ticket_id, TriageSchema(), data, apply, done)


# ------------------------------------------------------------------ incident


class _IncidentFormSchema(ma.Schema):
    """The incident forms' one field: ``incident``, an incident id."""

    incident = ma.fields.Integer(
        required=True,
        strict=False,
        validate=ma.validate.Range(min=1, max=MAX_ID),
        error_messages={"required": "Choose an incident.", "invalid": "Not an incident number."},
    )


def _incident_field() -> dict[str, str]:
    chosen = (request.form.get("incident") or "").strip()
    return {"incident": chosen} if chosen else {}


def _incident_of(incident_id: int) -> Any:
    from ticketing.status import incidents

    if "status" not in current_app.extensions:
        raise ApiError(404, "not_found", "the status page is not enabled")
    return incidents.get_incident(incident_id)


@bp.post("/tickets/<id:ticket_id>/incident")
def link_incident(ticket_id: int) -> ResponseReturnValue:
    """Link the ticket to an incident by hand (its SLA clock stands still while it is open)."""
    from ticketing.status import incident_tickets

    linked: list[int] = []

    def apply(ticket: Ticket, data: dict[str, Any], actor: Actor) -> None:
        incident = _incident_of(data["incident"])
        incident_tickets.link(ticket, incident, actor, "linked by staff")
        linked.append(incident.id)

    return _change(
        ticket_id,
        _IncidentFormSchema(),
        _incident_field(),
        apply,
        lambda: f"Linked to incident #{linked[0]}.",
    )


@bp.post("/tickets/<id:ticket_id>/incident/unlink")
def unlink_incident(ticket_id: int) -> ResponseReturnValue:
    """Unlink the ticket from its incident; its SLA clock runs again."""
    from ticketing.status import incident_tickets

    def apply(ticket: Ticket, data: dict[str, Any], actor: Actor) -> None:
        if not incident_tickets.unlink(ticket, actor):
            raise ApiError(409, "not_linked", "the ticket is not linked to an incident")

    return _change(
        ticket_id, ma.Schema(), {}, apply, "Unlinked from the incident: its SLA clock runs again."
    )


@bp.post("/tickets/<id:ticket_id>/incident/dismiss")
def dismiss_suggestion(ticket_id: int) -> ResponseReturnValue:
    """Staff say the suggested incident is not what the ticket is about."""
    from ticketing.status import incident_tickets

    def apply(ticket: Ticket, data: dict[str, Any], actor: Actor) -> None:
        if not incident_tickets.dismiss(ticket, data["incident"], actor):
            raise ApiError(404, "not_found", "no such suggestion for this ticket")

    return _change(
        ticket_id,
        _IncidentFormSchema(),
        _incident_field(),
        apply,
        "Suggestion dismissed.",
    )
