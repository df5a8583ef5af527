"""The queue's bulk actions (``POST /console/bulk``): one change to the selected tickets.

The queue's action bar posts the ticked tickets (``ticket``; with "select all on
this page", every ``page_ticket`` of the page too) and the button pressed
(``action``: ``assign``, ``status``, ``priority``, ``link``, ``unlink``) with
its field (``assignee``, ``status``, ``priority``, ``incident``). The change is
made by :func:`ticketing.desk.bulk.apply`, the staff API's bulk route, called
once and committed once: each ticket follows the rules of its single-ticket
form (an agent assigns only itself, a transition must be allowed), a refused
one is left as it was while the others change. The answer is the same queue
view (its filters and page are the form's query string) with a notice saying
what happened: "12 tickets changed, 1 refused: #45: a ticket cannot go from
closed to resolved". A request that cannot be done at all (nothing selected,
an unknown action or value) re-renders the queue with its reason and a 4xx.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue

from ticketing.api.schemas import BULK_MAX
from ticketing.auth import Actor
from ticketing.console.blueprint import bp, signed_in_staff
from ticketing.console.queue_page import QUEUE_ARGS, queue_filters, queue_view
from ticketing.db import db, id_from_text
from ticketing.desk import bulk, tickets
from ticketing.desk.metrics import discard_after_commit
from ticketing.errors import ApiError

#: The form's field holding each action's value.
VALUE_FIELDS = {
    "assign": "assignee",
    "status": "status",
    "priority": "priority",
    "link": "incident",
}
#: How many refusals the notice spells out (the rest are counted).
SHOWN_REFUSALS = 5


class Refused(Exception):
    """The whole request cannot be done: the queue says why, with ``status``."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _id(text: str) -> int | None:
    return id_from_text(text.strip())


def selected_ids() -> list[int]:
    """The ticked tickets, and the page's when "select all on this page" was ticked."""
    raw = request.form.getlist("ticket")
    if request.form.get("all_on_page"):
        raw += request.form.getlist("page_ticket")
    ids: list[int] = []
    for text in raw:
        ticket_id = _id(text)
        if ticket_id is None:
            raise Refused(f"{text[:20]!r} is not a ticket number.")
        ids.append(ticket_id)
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise Refused("Nothing was changed: select at least one ticket first.")
    if len(ids) > BULK_MAX:
        raise Refused(f"Select at most {BULK_MAX} tickets at once.")
    return ids


def action_value(action: str, actor: Actor) -> Any:
    """The value ``bulk.apply`` takes for ``action``, from the form's field."""
    if action not in (*VALUE_FIELDS, "unlink"):
        raise Refused("Choose what to do with the selected tickets.")
    if action == "unlink":
        return None
    text = (request.form.get(VALUE_FIELDS[action]) or "").strip()
    if action == "assign":
        if text == "me":
            return actor.id
        if text == "none":
            return None
        staff_id = _id(text)
        if staff_id is None:
            raise Refused("Choose who to assign the selected tickets to.")
        return staff_id
    if action == "link":
        incident_id = _id(text)
        if incident_id is None:
            raise Refused("Choose the incident to link the selected tickets to.")
        return incident_id
    if not text:
        raise Refused(f"Choose the {action} to set on the selected tickets.")
    return text


def reason(error: dict[str, Any]) -> str:
    """A refused ticket's error as a short sentence part (field messages when it has them)."""
    fields = (error.get("details") or {}).get("fields") or {}
    messages = [str(m) for where in fields.values() for ms in where.values() for m in ms]
    if messages:
        return " ".join(messages).rstrip(".")
    return str(error.get("message") or error.get("code") or "refused")


def summary(results: list[dict[str, Any]]) -> str:
    """What happened, in one line: "12 tickets changed, 1 refused: #45: a ticket ..."."""
    by: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        by.setdefault(result["result"], []).append(result)

    def tickets_(n: int) -> str:
        return f"{n} ticket{'' if n == 1 else 's'}"

    parts = [f"{tickets_(len(by.get('changed', [])))} changed"]
    if by.get("unchanged"):
        parts.append(f"{len(by['unchanged'])} already so")
    if by.get("not_found"):
        parts.append(
            f"{len(by['not_found'])} not found ("
            + ", ".join(f"#{r['id']}" for r in by["not_found"][:SHOWN_REFUSALS])
            + ")"
        )
    refused = by.get("refused", [])
    if refused:
        listed = "; ".join(f"#{r['id']}: {reason(r['error'])}" for r in refused[:SHOWN_REFUSALS])
        more = len(refused) - SHOWN_REFUSALS
        parts.append(
            f"{len(refused)} refused: {listed}" + (f"; and {more} more" if more > 0 else "")
        )
    return ", ".join(parts) + "."


@bp.post("/bulk", endpoint="bulk")
def bulk_action() -> ResponseReturnValue:
    actor = signed_in_staff()
    queue_filters(request.args)  # the view to go back to: a bad one is refused first
    action = (request.form.get("action") or "").strip()
    try:
        ids = selected_ids()
        value = action_value(action, actor)
        results = bulk.apply(actor, ids, action, value)
        tickets.commit()
    except Refused as exc:
        db.session.rollback()
        discard_after_commit()
        return queue_view(actor, exc.status, exc.message)
    except ApiError as exc:
        db.session.rollback()
        discard_after_commit()
        problem = reason({"message": exc.message, "details": exc.details})
        return queue_view(actor, exc.status, f"Nothing was changed: {problem}.")
    problems = any(r["result"] in ("refused", "not_found") for r in results)
    flash(summary(results), "error" if problems else "success")
    back: dict[str, Any] = {k: v for k, v in request.args.items() if k in QUEUE_ARGS and v}
    return redirect(url_for("console.queue", **back), 303)
