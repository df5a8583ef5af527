"""The sessions page (``/console/sessions``): the staff member's signed-in console sessions.

Each row says when the session started, when it was last used, from which IP
and browser, and which one is this one; any other can be ended (a POST with
the form's CSRF token). Ending one is logged (``ticketing.console``) and kept
on the row (``end_reason`` ``ended``).
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from ticketing.console.blueprint import bp, settings, signed_in_staff
from ticketing.console.session import active_sessions, current_session, end_session, sign_out
from ticketing.db import db
from ticketing.models import ConsoleSession, utcnow


@bp.get("/sessions")
def sessions() -> ResponseReturnValue:
    actor = signed_in_staff()
    current = current_session()
    return render_template(
        "console/sessions.html",
        actor=actor,
        sessions=active_sessions(actor.id),
        current_id=current.id if current is not None else None,
        idle_timeout=settings().idle_timeout,
        now=utcnow(),
    )


@bp.post("/sessions/<id:session_id>/end")
def end_session_page(session_id: int) -> ResponseReturnValue:
    actor = signed_in_staff()
    row = db.session.get(ConsoleSession, session_id)
    if row is None or row.staff_id != actor.id:
        abort(404, "There is no such session of yours.")
    current = current_session()
    if current is not None and current.id == row.id:
        sign_out()
        flash("You are signed out.", "info")
        return redirect(url_for("console.login"), 303)
    if row.ended_at is None:
        end_session(row, "ended", by=actor)
        db.session.commit()
        flash("The session was ended: it is signed out.", "success")
    else:
        flash("That session had already ended.", "info")
    return redirect(url_for("console.sessions"), 303)
