"""Which status changes are allowed, and what each one does to a ticket's timestamps.

    open        -> in_progress, resolved, closed
    in_progress -> open, resolved, closed
    resolved    -> open (reopen), in_progress, closed
    closed      -> open (reopen)

Moving to ``resolved`` sets ``resolved_at``; to ``closed`` sets ``closed_at``;
back to ``open``/``in_progress`` from ``resolved``/``closed`` (a reopen)
clears both. SLA due times stay as they were, counted from creation.
Partners may close their own ticket (from any status but closed) and reopen
it (from resolved or closed); staff may make any allowed change.
"""

from __future__ import annotations

from ticketing.errors import ApiError

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "open": ("in_progress", "resolved", "closed"),
    "in_progress": ("open", "resolved", "closed"),
    "resolved": ("open", "in_progress", "closed"),
    "closed": ("open",),
}

#: Transitions a partner may make on their own ticket.
PARTNER_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "open": ("closed",),
    "in_progress": ("closed",),
    "resolved": ("open", "closed"),
    "closed": ("open",),
}


def check_transition(
    current: str, target: str, table: dict[str, tuple[str, ...]] = TRANSITIONS
) -> None:
    """Raise 409 ``invalid_transition`` (listing the allowed targets) unless allowed."""
    allowed = table.get(current, ())
    if target not in allowed:
        raise ApiError(
            409,
            "invalid_transition",
            f"a ticket cannot go from {current} to {target}",
            details={"status": current, "requested": target, "allowed": list(allowed)},
        )


def is_reopen(current: str, target: str) -> bool:
    return current in ("resolved", "closed") and target in ("open", "in_progress")


def counts_as_resolution(current: str, target: str) -> bool:
    """Entering resolved, or closing a ticket that was still being worked on."""
    return target == "resolved" or (target == "closed" and current in ("open", "in_progress"))
