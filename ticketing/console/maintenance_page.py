"""Scheduled maintenance in the console (``/console/maintenance``).

Plan a window (title, message, components, start and end in UTC), see what is
planned, in progress and past, and finish one early or call it off. Every change
goes through :mod:`ticketing.status.maintenance` (audit trail, partner events,
the Alertmanager silence through the outbox) and is committed here; a refusal
re-renders the page with its reason and status.
"""

from __future__ import annotations

from datetime import datetime

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ticketing.console.blueprint import bp, signed_in_staff
from ticketing.db import db
from ticketing.errors import ApiError
from ticketing.models import utcnow


def _when(name: str) -> datetime:
    """A ``datetime-local`` field (``2026-05-01T09:30``), read as UTC."""
    value = (request.form.get(name) or "").strip()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(
            422, "invalid_form", f"{name}: a date and time such as 2026-05-01T09:30 (UTC)"
        ) from None
    if moment.tzinfo is not None:
        from datetime import UTC

        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


@bp.get("/maintenance")
def maintenance_list() -> ResponseReturnValue:
    return _page()


def _page(status: int = 200, error: str | None = None) -> ResponseReturnValue:
    from ticketing.status.maintenance import effective_status
    from ticketing.status.models import Maintenance

    state = current_app.extensions.get("status")
    if state is None:
        abort(404, "The status page is not enabled.")
    now = utcnow()
    rows = list(
        db.session.execute(
            db.select(Maintenance).order_by(Maintenance.starts_at.desc()).limit(100)
        ).scalars()
    )
    states = {mt.id: effective_status(mt, now) for mt in rows}
    return (
        render_template(
            "console/maintenance.html",
            actor=signed_in_staff(),
            open=[mt for mt in rows if states[mt.id] in ("scheduled", "in_progress")][::-1],
            past=[mt for mt in rows if states[mt.id] in ("completed", "cancelled")][:20],
            states=states,
            configured=state.settings.components,
            error=error,
            form=request.form if error else {},
            now=now,
        ),
        status,
    )


@bp.post("/maintenance")
def maintenance_schedule() -> ResponseReturnValue:
    from ticketing.status import maintenance, page

    state = current_app.extensions.get("status")
    if state is None:
        abort(404, "The status page is not enabled.")
    actor = signed_in_staff()
    try:
        title = (request.form.get("title") or "").strip()
        body = (request.form.get("body") or "").strip()
        if "\x00" in title + body:
            raise ApiError(422, "invalid_form", "title and message must not contain NUL characters")
        if len(title) > 200 or len(body) > 5000:
            raise ApiError(
                422, "invalid_form", "title: at most 200, message: at most 5000 characters"
            )
        maintenance.schedule(
            state.settings,
            title,
            body,
            request.form.getlist("components"),
            _when("starts_at"),
            _when("ends_at"),
            ("staff", actor.id),
        )
        db.session.commit()
    except ApiError as exc:
        db.session.rollback()
        return _page(exc.status, f"Not scheduled: {exc.message}")
    page.invalidate()
    flash("Maintenance scheduled: partners are told, and its alerts will be silenced.")
    return redirect(url_for("console.maintenance_list"), 303)


@bp.post("/maintenance/<int:maintenance_id>/finish")
def maintenance_finish(maintenance_id: int) -> ResponseReturnValue:
    from ticketing.status import maintenance, page

    if current_app.extensions.get("status") is None:
        abort(404, "The status page is not enabled.")
    actor = signed_in_staff()
    try:
        maintenance.finish(maintenance.get(maintenance_id), ("staff", actor.id))
        db.session.commit()
    except ApiError as exc:
        db.session.rollback()
        if exc.status == 404:
            raise
        return _page(exc.status, f"Not changed: {exc.message}")
    page.invalidate()
    flash("Maintenance ended: its silence is removed.")
    return redirect(url_for("console.maintenance_list"), 303)
