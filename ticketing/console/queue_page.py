"""The queue page (``/console/``): filters, counts by status, a page of tickets, and
the bulk action bar (its form posts to ``bulk_page.py``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import marshmallow as ma
from flask import current_app, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import func

from ticketing.api.schemas import StaffQueueQuerySchema
from ticketing.auth import Actor
from ticketing.console.blueprint import bp, problems_text, settings, signed_in_staff
from ticketing.console.regions import render_regions
from ticketing.db import db
from ticketing.desk.choices import CATEGORIES, PRIORITIES, STATUSES
from ticketing.desk.queue import filtered, queue_page, sla_state, status_counts
from ticketing.errors import ApiError
from ticketing.models import Partner, Staff, Ticket, utcnow

ACTIVE = "open,in_progress"
QUEUE_REGIONS = {
    "status-counts": "console/_counts.html",
    "queue-table": "console/_queue_table.html",
}

#: The queue view's query string: its filters and the page's cursor.
QUEUE_ARGS = (
    "status",
    "priority",
    "category",
    "partner",
    "incident_id",
    "assignee",
    "overdue",
    "triage",
    "cursor",
)


def queue_filters(args: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The queue's filters (validated by the staff API's schema) and the form's values."""
    form = {name: (args.get(name) or "").strip() for name in QUEUE_ARGS if name != "cursor"}
    if "status" not in args:
        form["status"] = "active"
    raw: dict[str, str] = {"order": "due"}
    if form["status"] == "active":
        raw["status"] = ACTIVE
    elif form["status"] not in ("", "any"):
        raw["status"] = form["status"]
    for name in ("priority", "category", "assignee"):
        if form[name]:
            raw[name] = form[name]
    if form["partner"]:
        raw["partner_id"] = form["partner"]
    if form["incident_id"]:
        raw["incident_id"] = form["incident_id"]
    if form["overdue"] in ("yes", "no"):
        raw["overdue"] = "true" if form["overdue"] == "yes" else "false"
    elif form["overdue"]:
        raw["overdue"] = form["overdue"]  # refused by the schema, with its message
    if form["triage"] in ("needed", "done"):
        raw["needs_triage"] = "true" if form["triage"] == "needed" else "false"
    elif form["triage"]:
        raw["needs_triage"] = form["triage"]  # refused by the schema, with its message
    if args.get("cursor"):
        raw["cursor"] = args["cursor"]
    try:
        filters: dict[str, Any] = StaffQueueQuerySchema().load(raw)
    except ma.ValidationError as exc:
        raise ApiError(
            400, "invalid_query", "these filters are not valid: " + problems_text(exc.messages)
        ) from None
    return filters, form


def staff_and_partners() -> tuple[Sequence[Staff], Sequence[Partner]]:
    """Every staff member and partner, by name (for names on the page and the filters)."""
    staff = db.session.execute(db.select(Staff).order_by(Staff.name)).scalars().all()
    partners = db.session.execute(db.select(Partner).order_by(Partner.name)).scalars().all()
    return staff, partners


def incident_choices(keep: Sequence[int | None] = ()) -> dict[str, Any]:
    """The incidents the console offers: ``recent`` (the filter's choices, with those
    in ``keep``), ``open`` (not resolved, drafts too: what tickets may be linked to),
    ``titles`` by id. Empty when the status page is not enabled."""
    if "status" not in current_app.extensions:
        return {"recent": [], "open": [], "titles": {}}
    from ticketing.status.models import Incident

    recent = list(
        db.session.execute(db.select(Incident).order_by(Incident.id.desc()).limit(50)).scalars()
    )
    known = {i.id for i in recent}
    wanted = {i for i in keep if i is not None and i not in known}
    if wanted:
        recent += db.session.execute(
            db.select(Incident).where(Incident.id.in_(wanted)).order_by(Incident.id.desc())
        ).scalars()
    still_open = list(
        db.session.execute(
            db.select(Incident).where(Incident.resolved_at.is_(None)).order_by(Incident.id.desc())
        ).scalars()
    )
    return {
        "recent": recent,
        "open": still_open,
        "titles": {i.id: i.title for i in [*recent, *still_open]},
    }


def console_sla_state(ticket: Ticket, now: Any, due_soon: timedelta) -> str:
    """``sla_state``, or ``paused`` for an active ticket whose clock stands still
    (its incident is open: it is never overdue meanwhile)."""
    if ticket.sla_paused_at is not None and ticket.status in ("open", "in_progress"):
        return "paused"
    return sla_state(ticket, now, due_soon)


def queue_context(actor: Actor) -> dict[str, Any]:
    filters, form = queue_filters(request.args)
    cursor = filters.pop("cursor", None)
    now = utcnow()
    page = queue_page(actor, filters, cursor=cursor, limit=settings().page_size, now=now)
    counts = status_counts(actor, filters, now=now)
    untriaged = {**filters, "needs_triage": True}
    triage_count = db.session.scalar(
        filtered(db.select(func.count()).select_from(Ticket), actor, untriaged, now)
    )
    staff, partners = staff_and_partners()
    query = {k: v for k, v in form.items() if v}
    due_soon = timedelta(seconds=settings().due_soon)

    def sla(ticket: Ticket) -> str:
        return console_sla_state(ticket, now, due_soon)

    incident_ids = [t.incident_id for t in page.items]
    incidents = incident_choices([*incident_ids, filters.get("incident_id")])
    page_query = {**query, **({"cursor": cursor} if cursor else {})}

    return {
        "actor": actor,
        "tickets": page.items,
        "next_cursor": page.next_cursor,
        "cursor": cursor,
        "counts": counts,
        "triage_count": triage_count or 0,
        "form": form,
        "now": now,
        "staff": staff,
        "partners": partners,
        "staff_names": {s.id: s.name for s in staff},
        "partner_names": {p.id: p.name for p in partners},
        "sla": sla,
        "query": query,
        "next_url": (
            url_for("console.queue") + "?" + urlencode({**query, "cursor": page.next_cursor})
        )
        if page.next_cursor
        else None,
        "live_url": url_for("console.live_queue")
        + (
            "?" + urlencode({**query, **({"cursor": cursor} if cursor else {})})
            if query or cursor
            else ""
        ),
        "statuses": STATUSES,
        "priorities": PRIORITIES,
        "categories": CATEGORIES,
        "incidents": incidents,
        "bulk_url": url_for("console.bulk", **page_query),
        "error": None,
    }


@bp.get("/")
def queue() -> ResponseReturnValue:
    return queue_view(signed_in_staff())


def queue_view(actor: Actor, status: int = 200, error: str | None = None) -> ResponseReturnValue:
    """The queue as the request's query string filters it; ``error``: a refused bulk
    action, shown above the table with its status."""
    context = queue_context(actor)
    context["error"] = error
    regions, version = render_regions(QUEUE_REGIONS, context)
    return render_template(
        "console/queue.html", regions=regions, version=version, **context
    ), status
