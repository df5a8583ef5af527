"""What a collector is: something the scheduler runs on an interval.

A collector's :meth:`~Collector.collect` does the slow work (a query, an HTTP
request, a PING) and returns finished ``*MetricFamily`` objects; the scheduler
caches them and /metrics serves the cache, so a scrape never waits on a
database. A run that fails raises an exception; a probe that still has
something true to say about the failure (``platform_db_up 0``) raises
:class:`CollectFailed` carrying those families, which replace the cached ones.

    class Answer(Collector):
        def collect(self):
            family = GaugeMetricFamily("answer", "The answer.")
            family.add_metric([], 42)
            return [family]

    Answer("answer", interval=15, timeout=5, staleness=60)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client.metrics_core import Metric


class CollectFailed(Exception):
    """A failed run, with the families that describe the failure (may be empty)."""

    def __init__(self, message: str, families: Sequence[Metric] = ()):
        super().__init__(message)
        self.message = message
        self.families = list(families)


class Collector:
    """Base class: a named unit of collection with its own schedule."""

    def __init__(self, name: str, *, interval: float, timeout: float, staleness: float):
        self.name = name
        self.interval = interval
        self.timeout = timeout
        self.staleness = staleness

    def collect(self) -> list[Metric]:
        """Do the work; return the families to serve, or raise."""
        raise NotImplementedError

    def timeout_families(self) -> list[Metric]:
        """Families to serve when a run overran its deadline (probes: ``up 0``)."""
        return []

    def status(self) -> dict[str, Any]:
        """What /status shows about the collector beyond its last run (a watermark, ...)."""
        return {}

    def close(self) -> None:
        """Release what the collector holds (clients, sessions)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} every {self.interval:g}s>"
