"""The support desk's counters and histograms (ticketing's ``/metrics``).

Names are those of docs/metrics.md. They are observed only after the change
they count is committed:

    after_commit(lambda: TICKETS_CREATED.labels(priority, category).inc())
"""

from __future__ import annotations

from collections.abc import Callable

from flask import g
from prometheus_client import Counter, Histogram

# Seconds: 1 minute ... 2 weeks, matching the SLA targets' scale.
_SLA_BUCKETS = (
    60,
    300,
    900,
    1800,
    3600,
    7200,
    14400,
    28800,
    86400,
    172800,
    259200,
    604800,
    1209600,
)

TICKETS_CREATED = Counter(
    "support_tickets_created_total", "Tickets created.", ["priority", "category"]
)
MESSAGES = Counter("support_ticket_messages_total", "Messages posted on tickets.", ["sender_type"])
FIRST_RESPONSE = Histogram(
    "support_ticket_first_response_seconds",
    "Time from a ticket's creation to its first public staff reply.",
    ["priority"],
    buckets=_SLA_BUCKETS,
)
RESOLUTION = Histogram(
    "support_ticket_resolution_seconds",
    "Time from a ticket's creation to its resolution.",
    ["priority"],
    buckets=_SLA_BUCKETS,
)


def after_commit(callback: Callable[[], None]) -> None:
    """Run ``callback`` once the current request's transaction has committed."""
    g.setdefault("ticketing_after_commit", []).append(callback)


def run_after_commit() -> None:
    for callback in g.pop("ticketing_after_commit", []):
        callback()


def discard_after_commit() -> None:
    g.pop("ticketing_after_commit", None)
