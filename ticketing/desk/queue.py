"""The support queue: which tickets staff see, in which order, and how many per status.

One implementation for the staff API (``GET /api/v1/staff/tickets``) and the
support console (``/console``):

    page = queue_page(actor, {"status": ["open"], "assignee": "me", "order": "due"},
                      cursor=None, limit=25)
    counts = status_counts(actor, {"assignee": "me"})   # {"open": 3, "in_progress": 1, ...}

Filters (all optional): ``status``, ``priority``, ``category`` (lists),
``partner_id``, ``incident_id`` (the status incident it is linked to),
``assignee`` (``"me"``, ``"none"`` or a staff id as text),
``overdue`` (bool), ``needs_triage`` (bool: the automatic category was not
confident enough) and ``order``: ``oldest`` (default), ``newest``, or
``due`` (the next SLA due time first: the first response's until it is given,
then the resolution's; ties by id).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, false, func, not_

from ticketing.api.pagination import Page, paginate
from ticketing.auth import Actor
from ticketing.db import db, id_from_text, is_id
from ticketing.desk.choices import STATUSES
from ticketing.models import Ticket, utcnow

FILTERS = (
    "status",
    "priority",
    "category",
    "partner_id",
    "incident_id",
    "assignee",
    "overdue",
    "needs_triage",
    "order",
)
ORDERS = ("oldest", "newest", "due")

#: What a filtered select returns (tickets, or a status and a count).
T = TypeVar("T", bound=tuple[Any, ...])


def filtered(
    stmt: Select[T], actor: Actor, filters: Mapping[str, Any], now: datetime | None = None
) -> Select[T]:
    """``stmt`` (a select over tickets) narrowed by ``filters`` (``order`` is ignored).

    A filter that is present applies, whatever its value (an empty status list
    matches nothing): callers leave out what they do not filter by."""
    for name in ("status", "priority", "category"):
        if name in filters:
            stmt = stmt.where(getattr(Ticket, name).in_(filters[name]))
    if "partner_id" in filters:
        stmt = stmt.where(Ticket.partner_id == filters["partner_id"])
    if "incident_id" in filters:
        stmt = stmt.where(Ticket.incident_id == filters["incident_id"])
    assignee = filters.get("assignee")
    if assignee == "none":
        stmt = stmt.where(Ticket.assignee_id.is_(None))
    elif assignee == "me":
        stmt = stmt.where(Ticket.assignee_id == actor.id)
    elif assignee is not None:
        # An id no row can have (too large for the column, not digits) matches nothing
        # rather than reaching the database, which would refuse the comparison.
        staff_id = assignee if is_id(assignee) else id_from_text(assignee)
        stmt = stmt.where(Ticket.assignee_id == staff_id if staff_id else false())
    if "overdue" in filters:
        overdue = Ticket.overdue_clause(now or utcnow())
        stmt = stmt.where(overdue if filters["overdue"] else not_(overdue))
    if "needs_triage" in filters:
        stmt = stmt.where(
            Ticket.needs_triage if filters["needs_triage"] else not_(Ticket.needs_triage)
        )
    return stmt


def queue_page(
    actor: Actor,
    filters: Mapping[str, Any],
    cursor: str | None,
    limit: int,
    now: datetime | None = None,
) -> Page:
    """One page of the queue; the cursor is bound to ``filters`` (400 when it is not theirs)."""
    bound = {name: filters[name] for name in FILTERS if name in filters}
    stmt = filtered(db.select(Ticket), actor, bound, now)
    order = bound.get("order")
    if order == "due":
        return paginate(
            stmt,
            Ticket.id,
            filters=bound,
            cursor=cursor,
            limit=limit,
            newest_first=False,
            sort_key=Ticket.next_due_clause(),
            sort_value=Ticket.next_due_at,
        )
    return paginate(
        stmt, Ticket.id, filters=bound, cursor=cursor, limit=limit, newest_first=order == "newest"
    )


def status_counts(
    actor: Actor, filters: Mapping[str, Any], now: datetime | None = None
) -> dict[str, int]:
    """Tickets per status under ``filters`` but their ``status`` (every status, 0 included)."""
    others = {name: value for name, value in filters.items() if name != "status"}
    stmt = filtered(
        db.select(Ticket.status, func.count()).select_from(Ticket), actor, others, now
    ).group_by(Ticket.status)
    counts = dict.fromkeys(STATUSES, 0)
    counts.update({status: n for status, n in db.session.execute(stmt)})
    return counts


def sla_state(ticket: Ticket, now: datetime, due_soon: timedelta) -> str:
    """``overdue``, ``due_soon`` (the next due time within ``due_soon``), ``on_track``
    or ``none`` (resolved or closed: no clock runs)."""
    if ticket.first_response_overdue(now) or ticket.resolution_overdue(now):
        return "overdue"
    if ticket.status not in ("open", "in_progress"):
        return "none"
    if ticket.next_due_at() - now <= due_soon:
        return "due_soon"
    return "on_track"
