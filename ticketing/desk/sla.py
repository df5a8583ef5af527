"""Service-level targets: when a ticket's first response and resolution are due.

Targets per priority come from the ``sla`` section of the config and count
from the ticket's creation; changing the priority moves both due times.
A ticket is overdue while it is open or in progress past a due time (for the
first response, only until the first public staff reply): see
``Ticket.first_response_overdue`` and ``Ticket.resolution_overdue``.
"""

from __future__ import annotations

from datetime import datetime

from ticketing.desk.settings import SlaSettings
from ticketing.models import Ticket


def due_times(sla: SlaSettings, priority: str, created_at: datetime) -> tuple[datetime, datetime]:
    """(first response due, resolution due) of a ``priority`` ticket created at ``created_at``."""
    return created_at + sla.first_response[priority], created_at + sla.resolution[priority]


def apply(sla: SlaSettings, ticket: Ticket) -> None:
    """Set ``ticket``'s due times from its priority and creation time."""
    ticket.first_response_due_at, ticket.resolution_due_at = due_times(
        sla, ticket.priority, ticket.created_at
    )
