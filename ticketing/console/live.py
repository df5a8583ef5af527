"""What open pages poll (``/console/live/...``): their regions that changed, as JSON."""

from __future__ import annotations

from flask.typing import ResponseReturnValue

from ticketing.console.blueprint import bp, signed_in_staff
from ticketing.console.queue_page import QUEUE_REGIONS, queue_context
from ticketing.console.regions import changed_regions
from ticketing.console.ticket_page import TICKET_REGIONS, ticket_context
from ticketing.desk import tickets


@bp.get("/live/queue")
def live_queue() -> ResponseReturnValue:
    return changed_regions(QUEUE_REGIONS, queue_context(signed_in_staff()))


@bp.get("/live/tickets/<id:ticket_id>")
def live_ticket(ticket_id: int) -> ResponseReturnValue:
    ticket = tickets.staff_ticket(ticket_id)
    return changed_regions(TICKET_REGIONS, ticket_context(signed_in_staff(), ticket))
