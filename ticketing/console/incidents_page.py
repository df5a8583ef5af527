"""The status page's incidents in the console (``/console/incidents``).

- the list: drafts first (opened by alerts, waiting for staff), then open and
  recently resolved incidents, and the components' states as partners see them;
- opening an incident by hand (title, components, impact, first message);
- an incident: its updates and audit trail; publish (a draft, optionally
  retitled and with a partner-facing first message), post an update
  (investigating, identified, monitoring, resolved; optionally also as a
  public reply on every linked ticket), resolve (with whether that resolves
  the linked tickets, and their closing message);
- its tickets (:mod:`ticketing.status.incident_tickets`): the linked ones (the
  queue filtered by the incident is where bulk work on them happens), the
  suggested ones (link, dismiss), and the latest update sent to every linked
  ticket as a public reply, once each.

Every change goes through :mod:`ticketing.status.incidents` (which records it
in the audit trail and tells partners once published) and is committed here;
a refusal re-renders the page with its reason and status.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ticketing.console.blueprint import bp, signed_in_staff
from ticketing.db import db
from ticketing.errors import ApiError
from ticketing.models import utcnow

TITLE_MAX = 200
BODY_MAX = 5000
#: Linked tickets listed on the incident's page (all of them: the queue, filtered).
LINKED_SHOWN = 25


def _status() -> Any:
    state = current_app.extensions.get("status")
    if state is None:
        abort(404, "The status page is not enabled.")
    return state


def _text(name: str, limit: int, required: bool = True) -> str:
    value = (request.form.get(name) or "").strip()
    if required and not value:
        raise ApiError(422, "invalid_form", f"{name}: required")
    if len(value) > limit:
        raise ApiError(422, "invalid_form", f"{name}: at most {limit} characters")
    if "\x00" in value:
        raise ApiError(422, "invalid_form", f"{name}: must not contain NUL characters")
    return value


@bp.get("/incidents")
def incidents_list() -> ResponseReturnValue:
    return _list_page()


def _list_page(status: int = 200, error: str | None = None) -> ResponseReturnValue:
    from ticketing.status import incidents
    from ticketing.status.models import Incident

    state = _status()
    actor = signed_in_staff()
    from ticketing.status import incident_tickets

    rows = list(
        db.session.execute(db.select(Incident).order_by(Incident.id.desc()).limit(100)).scalars()
    )
    drafts = [i for i in rows if i.published_at is None and i.resolved_at is None]
    active = [i for i in rows if i.published_at is not None and i.resolved_at is None]
    closed = [i for i in rows if i.resolved_at is not None][:20]
    return (
        render_template(
            "console/incidents.html",
            actor=actor,
            drafts=drafts,
            active=active,
            closed=closed,
            components=incidents.component_states(state.settings),
            configured=state.settings.components,
            impacts=("minor", "major", "critical", "none"),
            linked=incident_tickets.linked_counts(i.id for i in rows),
            error=error,
            form=request.form if error else {},
            now=utcnow(),
        ),
        status,
    )


@bp.post("/incidents")
def incident_open() -> ResponseReturnValue:
    from ticketing.status import incidents, page

    state = _status()
    actor = signed_in_staff()
    try:
        incident = incidents.open_incident(
            state.settings,
            _text("title", TITLE_MAX),
            request.form.getlist("components"),
            request.form.get("impact") or "minor",
            _text("body", BODY_MAX),
            ("staff", actor.id),
        )
        if request.form.get("publish") == "1":
            incidents.publish(incident, ("staff", actor.id))
        db.session.commit()
    except ApiError as exc:
        db.session.rollback()
        return _list_page(exc.status, f"Not opened: {exc.message}")
    page.invalidate()
    flash("Incident opened" + (" and published." if incident.published else " as a draft."))
    return redirect(url_for("console.incident_page", incident_id=incident.id), 303)


@bp.get("/incidents/<int:incident_id>")
def incident_page(incident_id: int) -> ResponseReturnValue:
    return _incident_page(incident_id)


def _incident_page(
    incident_id: int, status: int = 200, error: str | None = None
) -> ResponseReturnValue:
    from ticketing.console.queue_page import staff_and_partners
    from ticketing.status import incident_tickets, incidents

    state = _status()
    actor = signed_in_staff()
    incident = incidents.get_incident(incident_id)
    linked = incident_tickets.linked_tickets(incident.id)
    staff, partners = staff_and_partners()
    return (
        render_template(
            "console/incident.html",
            actor=actor,
            incident=incident,
            updates=incidents.updates_of([incident.id])[incident.id],
            audit=incidents.audit_of(incident),
            names={c.id: c.name for c in state.settings.components},
            statuses=("investigating", "identified", "monitoring", "resolved"),
            linked=linked[:LINKED_SHOWN],
            linked_count=len(linked),
            linked_open=sum(1 for t in linked if t.status != "closed"),
            suggested=incident_tickets.suggested_tickets(incident.id),
            partner_names={p.id: p.name for p in partners},
            staff_names={s.id: s.name for s in staff},
            error=error,
            now=utcnow(),
        ),
        status,
    )


def _act(incident_id: int, done: str | Callable[[], str], apply: Any) -> ResponseReturnValue:
    """``apply(incidents, incident, actor)``, commit (then count what it did, as the
    ticket rules ask), say ``done``; a refusal re-renders the page with its reason."""
    from ticketing.desk import tickets
    from ticketing.desk.metrics import discard_after_commit
    from ticketing.status import incidents, page

    _status()
    actor = signed_in_staff()
    incident = incidents.get_incident(incident_id)
    try:
        apply(incidents, incident, ("staff", actor.id))
        tickets.commit()
    except ApiError as exc:
        db.session.rollback()
        discard_after_commit()
        return _incident_page(incident_id, exc.status, f"Not saved: {exc.message}")
    page.invalidate()
    flash(done() if callable(done) else done, "success")
    return redirect(url_for("console.incident_page", incident_id=incident_id), 303)


@bp.post("/incidents/<int:incident_id>/publish")
def incident_publish(incident_id: int) -> ResponseReturnValue:
    title = _text("title", TITLE_MAX, required=False)
    body = _text("body", BODY_MAX, required=False)

    def apply(incidents: Any, incident: Any, actor: Any) -> None:
        if incident.published_at is None and title and title != incident.title:
            incidents.audit("retitled", actor, f"{incident.title} -> {title}", incident)
            incident.title = title
        if body and incident.published_at is None and incident.resolved_at is None:
            # The first message partners read: an update before publishing, so it is
            # part of incident.created.
            incidents.post_update(incident, incident.status, body, actor)
        incidents.publish(incident, actor)

    return _act(incident_id, "Published: partners see this incident now.", apply)


def _replies_said(result: Any) -> str:
    """What one "reply to every linked ticket" did, for the notice."""
    return (
        f"Sent to {result.sent} ticket{'' if result.sent == 1 else 's'}; "
        f"{result.already} had it already; {result.closed} closed"
    )


@bp.post("/incidents/<int:incident_id>/updates")
def incident_update(incident_id: int) -> ResponseReturnValue:
    """A new update; with ``reply_to_tickets`` also a public reply on every linked ticket."""
    from ticketing.status import incident_tickets

    status = request.form.get("status") or ""
    also_reply = request.form.get("reply_to_tickets") == "1" and status != "resolved"
    try:
        body = _text("body", BODY_MAX)
    except ApiError as exc:
        return _incident_page(incident_id, exc.status, f"Not saved: {exc.message}")
    said = ["Update posted."]

    def apply(incidents: Any, incident: Any, actor: Any) -> None:
        update = incidents.post_update(incident, status, body, actor)
        if also_reply:
            result = incident_tickets.reply_to_linked(incident, update, signed_in_staff())
            incidents.audit("replied_to_tickets", actor, _counts(result), incident)
            said[0] = f"Update posted. {_replies_said(result)}."

    return _act(incident_id, lambda: said[0], apply)


def _counts(result: Any) -> str:
    return f"{result.sent} sent, {result.already} already had it, {result.closed} closed"


def _resolve_settings(incidents: Any, incident: Any, actor: Any) -> None:
    """Save the resolve form's ``resolve_tickets`` and ``closing_message`` on the incident
    (audited as on ``PATCH /api/v1/staff/incidents/<id>``)."""
    resolve_tickets = request.form.get("resolve_tickets") == "1"
    message = _text("closing_message", BODY_MAX, required=False) or None
    changed = []
    if resolve_tickets != incident.resolve_tickets:
        incident.resolve_tickets = resolve_tickets
        changed.append(f"resolve_tickets={'on' if resolve_tickets else 'off'}")
    if message != incident.closing_message:
        incident.closing_message = message
        changed.append("closing message")
    if changed:
        incidents.audit("tickets_settings", actor, ", ".join(changed), incident)


@bp.post("/incidents/<int:incident_id>/resolve")
def incident_resolve(incident_id: int) -> ResponseReturnValue:
    """Resolve; first save whether that resolves the linked tickets, and their closing
    message (the resolve form's fields)."""
    from ticketing.status import incident_tickets

    body = _text("body", BODY_MAX, required=False)
    said = ["Resolved."]

    def apply(incidents: Any, incident: Any, actor: Any) -> None:
        if incident.resolved_at is None:
            _resolve_settings(incidents, incident, actor)

        def resolved_tickets() -> set[int]:
            return {
                t.id for t in incident_tickets.linked_tickets(incident.id) if t.status == "resolved"
            }

        before = resolved_tickets()
        incidents.resolve(incident, body, actor)
        count = len(resolved_tickets() - before)
        if count:
            said[0] = f"Resolved, and {count} linked ticket{'' if count == 1 else 's'} with it."

    return _act(incident_id, lambda: said[0], apply)


@bp.post("/incidents/<int:incident_id>/replies")
def incident_replies(incident_id: int) -> ResponseReturnValue:
    """The latest update as a public reply on every linked ticket, once each."""
    from ticketing.status import incident_tickets

    said = [""]

    def apply(incidents: Any, incident: Any, actor: Any) -> None:
        result = incident_tickets.reply_to_linked(incident, None, signed_in_staff())
        incidents.audit("replied_to_tickets", actor, _counts(result), incident)
        said[0] = _replies_said(result) + "."

    return _act(incident_id, lambda: said[0], apply)


def _suggested_ticket(incident_id: int, ticket_id: int) -> ResponseReturnValue:
    """Link (``link``) or dismiss a suggested ticket from the incident's page."""
    from ticketing.desk import tickets
    from ticketing.status import incident_tickets

    decision = request.form.get("decision")
    link = decision == "link"
    said = [""]

    def apply(incidents: Any, incident: Any, actor: Any) -> None:
        if decision not in ("link", "dismiss"):
            raise ApiError(422, "invalid_form", "decision: link or dismiss")
        ticket = tickets.staff_ticket(ticket_id)
        staff = signed_in_staff()
        if link:
            incident_tickets.link(ticket, incident, staff, "linked by staff (suggested)")
            said[0] = f"Ticket #{ticket.id} linked."
        elif incident_tickets.dismiss(ticket, incident.id, staff):
            said[0] = f"Suggestion #{ticket.id} dismissed."
        else:
            raise ApiError(404, "not_found", "no such suggestion")

    return _act(incident_id, lambda: said[0], apply)


@bp.post("/incidents/<int:incident_id>/suggestions/<id:ticket_id>")
def incident_suggestion(incident_id: int, ticket_id: int) -> ResponseReturnValue:
    return _suggested_ticket(incident_id, ticket_id)
