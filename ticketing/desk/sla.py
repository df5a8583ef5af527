"""Service-level targets: when a ticket's first response and resolution are due.

Targets per priority come from the ``sla`` section of the config and count
from the ticket's creation; changing the priority moves both due times.
A ticket is overdue while it is open or in progress past a due time (for the
first response, only until the first public staff reply): see
``Ticket.first_response_overdue`` and ``Ticket.resolution_overdue``.

**Paused clocks.** While the incident a ticket is linked to is open, the
ticket's clock stands still (:func:`pause`): it is not overdue, whatever its
due times say. When the pause ends (:func:`resume`: the incident is resolved,
or the ticket unlinked) the time it lasted is added to ``sla_paused_seconds``,
and both due times move by it, so the clock goes on where it stopped.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ticketing.desk.settings import SlaSettings
from ticketing.models import Ticket


def due_times(
    sla: SlaSettings, priority: str, created_at: datetime, paused_seconds: int = 0
) -> tuple[datetime, datetime]:
    """(first response due, resolution due) of a ``priority`` ticket created at
    ``created_at`` whose clock was paused ``paused_seconds`` in all."""
    paused = timedelta(seconds=paused_seconds)
    return (
        created_at + sla.first_response[priority] + paused,
        created_at + sla.resolution[priority] + paused,
    )


def apply(sla: SlaSettings, ticket: Ticket) -> None:
    """Set ``ticket``'s due times from its priority, creation time and past pauses."""
    ticket.first_response_due_at, ticket.resolution_due_at = due_times(
        sla, ticket.priority, ticket.created_at, ticket.sla_paused_seconds or 0
    )


def pause(ticket: Ticket, now: datetime) -> bool:
    """Stop ``ticket``'s clock at ``now``; False when it was already stopped."""
    if ticket.sla_paused_at is not None:
        return False
    ticket.sla_paused_at = now
    return True


def resume(sla: SlaSettings, ticket: Ticket, now: datetime) -> int:
    """Start ``ticket``'s clock again; the seconds the pause lasted (0: it was not paused)."""
    if ticket.sla_paused_at is None:
        return 0
    seconds = max(0, int((now - ticket.sla_paused_at).total_seconds()))
    ticket.sla_paused_seconds = (ticket.sla_paused_seconds or 0) + seconds
    ticket.sla_paused_at = None
    apply(sla, ticket)
    return seconds


def paused_seconds(ticket: Ticket, now: datetime) -> int:
    """All the time ``ticket``'s clock has stood still, the pause under way included."""
    ongoing = 0
    if ticket.sla_paused_at is not None:
        ongoing = max(0, int((now - ticket.sla_paused_at).total_seconds()))
    return (ticket.sla_paused_seconds or 0) + ongoing
