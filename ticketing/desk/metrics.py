"""The support desk's counters and histograms (ticketing's ``/metrics``).

Names are those of docs/metrics.md. They are observed only after the change
they count is committed:

    metrics = desk_metrics()
    after_commit(lambda: metrics.tickets_created.labels(priority, category).inc())

They are on prometheus_client's global ``REGISTRY`` (:data:`PROCESS_METRICS`),
unless the app was created with a registry of its own (a test's
``create_app({"METRICS_REGISTRY": CollectorRegistry()})``): then the app's
are on that registry (:func:`ticketing.runtime.metrics.init_metrics`).
"""

from __future__ import annotations

from collections.abc import Callable

from flask import current_app, g
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

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


class DeskMetrics:
    """The desk's counters and histograms, on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.tickets_created = Counter(
            "support_tickets_created_total",
            "Tickets created.",
            ["priority", "category"],
            registry=registry,
        )
        self.messages = Counter(
            "support_ticket_messages_total",
            "Messages posted on tickets.",
            ["sender_type"],
            registry=registry,
        )
        self.first_response = Histogram(
            "support_ticket_first_response_seconds",
            "Time from a ticket's creation to its first public staff reply.",
            ["priority"],
            buckets=_SLA_BUCKETS,
            registry=registry,
        )
        self.resolution = Histogram(
            "support_ticket_resolution_seconds",
            "Time from a ticket's creation to its resolution.",
            ["priority"],
            buckets=_SLA_BUCKETS,
            registry=registry,
        )

    def family_names(self) -> frozenset[str]:
        """The names of the metric families these are (what ``/metrics`` lists them as)."""
        metrics = (self.tickets_created, self.messages, self.first_response, self.resolution)
        return frozenset(family.name for metric in metrics for family in metric.describe())


#: The process's, on prometheus_client's global ``REGISTRY``: what an app counts on
#: unless it was given a registry of its own (``METRICS_REGISTRY``, see runtime/metrics.py).
PROCESS_METRICS = DeskMetrics(REGISTRY)
EXTENSION_KEY = "desk_metrics"


def desk_metrics() -> DeskMetrics:
    """The current app's desk metrics."""
    found: DeskMetrics = current_app.extensions.get(EXTENSION_KEY, PROCESS_METRICS)
    return found


def after_commit(callback: Callable[[], None]) -> None:
    """Run ``callback`` once the current request's transaction has committed."""
    g.setdefault("ticketing_after_commit", []).append(callback)


def run_after_commit() -> None:
    for callback in g.pop("ticketing_after_commit", []):
        callback()


def discard_after_commit() -> None:
    g.pop("ticketing_after_commit", None)
