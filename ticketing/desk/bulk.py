"""One change to many tickets: the console's bulk actions and ``POST /api/v1/staff/tickets/bulk``.

Each ticket goes through the same function as the single-ticket route
(:func:`ticketing.desk.tickets.assign`, ``change_status``, ``set_priority``;
the status package adds ``link`` and ``unlink``), so the same rules hold: an
agent may not assign a colleague, a closed ticket cannot be resolved. Those
functions refuse before they change anything, so a refused ticket is left as
it was while the others change; each ticket's result says which:

    results = bulk.apply(actor, [12, 13, 14], "status", "resolved")
    # [{"id": 12, "result": "changed", "error": None},
    #  {"id": 13, "result": "refused", "error": {"code": "invalid_transition", ...}},
    #  {"id": 14, "result": "not_found", "error": None}]

The caller commits once: all of it is one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ticketing.auth import Actor
from ticketing.db import db, is_id
from ticketing.desk import tickets
from ticketing.desk.choices import PRIORITIES, STATUSES
from ticketing.errors import ApiError
from ticketing.models import Ticket


@dataclass(frozen=True)
class Action:
    """``check`` turns the request's value into the action's (422 for a bad one), once
    for all tickets; ``apply`` changes one ticket, True when it changed."""

    check: Callable[[Any], Any]
    apply: Callable[[Ticket, Any, Actor], bool]


#: The actions by name; packages add their own (``ticketing.status`` adds link, unlink).
ACTIONS: dict[str, Action] = {}


def _invalid(message: str) -> ApiError:
    return ApiError(
        422,
        "validation_error",
        "the request is not valid",
        details={"fields": {"json": {"value": [message]}}},
    )


def _one_of(choices: Sequence[str]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise _invalid(f"Must be one of: {', '.join(choices)}.")
        return value

    return check


def staff_id_or_none(value: Any) -> int | None:
    if value is None:
        return None
    if not is_id(value):
        raise _invalid("Must be a staff id or null.")
    return value


def _status(ticket: Ticket, target: str, actor: Actor) -> bool:
    if ticket.status == target:
        return False
    tickets.change_status(ticket, target, actor)
    return True


ACTIONS["assign"] = Action(staff_id_or_none, lambda t, v, a: tickets.assign(t, v, a))
ACTIONS["status"] = Action(_one_of(STATUSES), _status)
ACTIONS["priority"] = Action(_one_of(PRIORITIES), lambda t, v, a: tickets.set_priority(t, v, a))


def apply(actor: Actor, ticket_ids: Sequence[int], action: str, value: Any) -> list[dict[str, Any]]:
    """Apply ``action`` with ``value`` to each ticket; one result per distinct id, in order."""
    chosen = ACTIONS.get(action)
    if chosen is None:
        raise ApiError(
            422,
            "validation_error",
            "the request is not valid",
            details={"fields": {"json": {"action": [f"Must be one of: {', '.join(ACTIONS)}."]}}},
        )
    checked = chosen.check(value)
    ids = list(dict.fromkeys(ticket_ids))
    found = {
        t.id: t for t in db.session.execute(db.select(Ticket).where(Ticket.id.in_(ids))).scalars()
    }
    results: list[dict[str, Any]] = []
    for ticket_id in ids:
        ticket = found.get(ticket_id)
        if ticket is None:
            results.append({"id": ticket_id, "result": "not_found", "error": None})
            continue
        try:
            changed = chosen.apply(ticket, checked, actor)
        except ApiError as exc:
            error = {"code": exc.code, "message": exc.message, "details": exc.details}
            results.append({"id": ticket_id, "result": "refused", "error": error})
            continue
        results.append(
            {"id": ticket_id, "result": "changed" if changed else "unchanged", "error": None}
        )
    return results
