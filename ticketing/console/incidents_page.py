"""The status page's incidents in the console (``/console/incidents``).

- the list: drafts first (opened by alerts, waiting for staff), then open and
  recently resolved incidents, and the components' states as partners see them;
- opening an incident by hand (title, components, impact, first message);
- an incident: its updates and audit trail; publish (a draft, optionally
  retitled and with a partner-facing first message), post an update
  (investigating, identified, monitoring, resolved), resolve.

Every change goes through :mod:`ticketing.status.incidents` (which records it
in the audit trail and tells partners once published) and is committed here;
a refusal re-renders the page with its reason and status.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ticketing.console.blueprint import bp, signed_in_staff
from ticketing.db import db
from ticketing.errors import ApiError
from ticketing.models import utcnow

TITLE_MAX = 200
BODY_MAX = 5000


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
    from ticketing.status import incidents

    state = _status()
    actor = signed_in_staff()
    incident = incidents.get_incident(incident_id)
    return (
        render_template(
            "console/incident.html",
            actor=actor,
            incident=incident,
            updates=incidents.updates_of([incident.id])[incident.id],
            audit=incidents.audit_of(incident),
            names={c.id: c.name for c in state.settings.components},
            statuses=("investigating", "identified", "monitoring", "resolved"),
            error=error,
            now=utcnow(),
        ),
        status,
    )


def _act(incident_id: int, done: str, apply: Any) -> ResponseReturnValue:
    from ticketing.status import incidents, page

    _status()
    actor = signed_in_staff()
    incident = incidents.get_incident(incident_id)
    try:
        apply(incidents, incident, ("staff", actor.id))
        db.session.commit()
    except ApiError as exc:
        db.session.rollback()
        return _incident_page(incident_id, exc.status, f"Not saved: {exc.message}")
    page.invalidate()
    flash(done)
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


@bp.post("/incidents/<int:incident_id>/updates")
def incident_update(incident_id: int) -> ResponseReturnValue:
    status = request.form.get("status") or ""
    try:
        body = _text("body", BODY_MAX)
    except ApiError as exc:
        return _incident_page(incident_id, exc.status, f"Not saved: {exc.message}")
    return _act(
        incident_id,
        "Update posted.",
        lambda incidents, incident, actor: incidents.post_update(incident, status, body, actor),
    )


@bp.post("/incidents/<int:incident_id>/resolve")
def incident_resolve(incident_id: int) -> ResponseReturnValue:
    body = _text("body", BODY_MAX, required=False)
    return _act(
        incident_id,
        "Resolved.",
        lambda incidents, incident, actor: incidents.resolve(incident, body, actor),
    )
