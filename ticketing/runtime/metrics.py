"""The ticket service's ``/metrics`` endpoint and its HTTP metrics.

Each package keeps its own counters beside its code (``desk/metrics.py``,
``security/metrics.py``, ``outbox/metrics.py``, ``webhooks/metrics.py``); this
module serves them. Only counters and histograms of what happened in this
process are served; gauges about the state of tickets are read from the
database by the exporter. Names are those of docs/metrics.md.

HTTP metrics come from prometheus-flask-exporter, labelled by ``method``,
``path`` (the route template, e.g. ``/api/v1/tickets/<id:ticket_id>``, so the
label set stays bounded) and ``status``.

Under gunicorn with several workers, ``PROMETHEUS_MULTIPROC_DIR`` is set (the
shipped ``gunicorn.conf.py`` sets it up) and every worker writes its samples
to files there; ``/metrics`` then sums all workers, whichever one answers.

"""

from __future__ import annotations

import os

from flask import Flask
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics


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
