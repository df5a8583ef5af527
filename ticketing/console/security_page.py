"""The security page (``/console/security``, admins only): recent security events."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from flask import abort, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ticketing.console.blueprint import bp, problems_text, signed_in_staff
from ticketing.errors import ApiError
from ticketing.models import utcnow


@bp.get("/security")
def security() -> ResponseReturnValue:
    from ticketing.security.api import (
        InvalidEventQuery,
        counts_by_type,
        find_events,
        may_read_events,
    )

    actor = signed_in_staff()
    if not may_read_events(actor):  # the staff API's rule
        abort(403, "The security page is for admins.")
    from ticketing.security.events import EventType

    event_type = request.args.get("type", "")
    args = {"limit": "50"}
    if event_type:  # the form's "all types" sends an empty type
        args["type"] = event_type
    if request.args.get("cursor"):
        args["cursor"] = request.args["cursor"]
    try:
        events, next_cursor = find_events(args)
    except InvalidEventQuery as exc:
        raise ApiError(
            400, "invalid_query", "these filters are not valid: " + problems_text(exc.problems)
        ) from None
    now = utcnow()
    return render_template(
        "console/security.html",
        actor=actor,
        events=events,
        event_type=event_type,
        types=[t.value for t in EventType],
        day=counts_by_type(now - timedelta(days=1)),
        week=counts_by_type(now - timedelta(days=7)),
        now=now,
        next_url=(
            url_for("console.security")
            + "?"
            + urlencode({**({"type": event_type} if event_type else {}), "cursor": next_cursor})
            if next_cursor
            else None
        ),
    )
