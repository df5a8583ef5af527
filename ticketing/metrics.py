"""The ticket service's Prometheus metrics and its ``/metrics`` endpoint.

Only counters and histograms of what happened in this process live here;
gauges about the state of tickets are read from the database by the exporter.
Names are those of docs/metrics.md.

HTTP metrics come from prometheus-flask-exporter, labelled by ``method``,
``path`` (the route template, e.g. ``/api/v1/tickets/<id:ticket_id>``, so the
label set stays bounded) and ``status``.

Under gunicorn with several workers, ``PROMETHEUS_MULTIPROC_DIR`` is set (the
shipped ``gunicorn.conf.py`` sets it up) and every worker writes its samples
to files there; ``/metrics`` then sums all workers, whichever one answers.

Domain metrics are observed only after the change they count is committed:

    after_commit(lambda: TICKETS_CREATED.labels(priority, category).inc())
"""
from __future__ import annotations

import os
from typing import Callable

from flask import Flask, g
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

# Seconds: 1 minute ... 2 weeks, matching the SLA targets' scale.
_SLA_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 259200,
                604800, 1209600)

TICKETS_CREATED = Counter(
    "support_tickets_created_total", "Tickets created.", ["priority", "category"])
MESSAGES = Counter(
    "support_ticket_messages_total", "Messages posted on tickets.", ["sender_type"])
FIRST_RESPONSE = Histogram(
    "support_ticket_first_response_seconds",
    "Time from a ticket's creation to its first public staff reply.",
    ["priority"], buckets=_SLA_BUCKETS)
RESOLUTION = Histogram(
    "support_ticket_resolution_seconds",
    "Time from a ticket's creation to its resolution.",
    ["priority"], buckets=_SLA_BUCKETS)


def after_commit(callback: Callable[[], None]) -> None:
    """Run ``callback`` once the current request's transaction has committed."""
    g.setdefault("ticketing_after_commit", []).append(callback)


def run_after_commit() -> None:
    for callback in g.pop("ticketing_after_commit", []):
        callback()


def discard_after_commit() -> None:
    g.pop("ticketing_after_commit", None)


def path(request) -> str:
    """The ``path`` label: the matched route template (bounded), not the raw URL."""
    rule = request.url_rule
    return rule.rule if rule is not None else "unmatched"


class _ProcessRegistry:
    """Exposes the process-wide registry (module-level metrics) inside an app's registry."""

    def collect(self):
        yield from REGISTRY.collect()


def init_metrics(app: Flask) -> PrometheusMetrics:
    """Serve ``/metrics`` and record HTTP metrics for ``app``.

    With ``PROMETHEUS_MULTIPROC_DIR`` set, samples of every process are summed
    from that directory. Otherwise each app gets its own registry for the HTTP
    metrics (so several apps in one process, as in tests, don't collide) that
    also exposes the module-level metrics above.
    """
    options = dict(group_by=path)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics = GunicornInternalPrometheusMetrics(app, **options)
    else:
        registry = CollectorRegistry()
        registry.register(_ProcessRegistry())
        metrics = PrometheusMetrics(app, registry=registry, **options)
    app.extensions["ticketing_metrics"] = metrics
    return metrics
