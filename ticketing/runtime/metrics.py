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

Who may read it is a choice (``api.metrics_token_file``, docs/ticketing.md):
by default ``/metrics`` is public on the API port, as Prometheus' shipped scrape
config expects; with a token file it answers only requests with
``Authorization: Bearer <token>`` (Prometheus: ``authorization.credentials_file``)
and 401 ``unauthorized`` to the others.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, Request, current_app
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

from ticketing.auth import bearer_token_matches
from ticketing.desk.metrics import EXTENSION_KEY as DESK_METRICS
from ticketing.desk.metrics import PROCESS_METRICS, DeskMetrics
from ticketing.errors import ApiError


def path(request: Request) -> str:
    """The ``path`` label: the matched route template (bounded), not the raw URL."""
    rule = request.url_rule
    return rule.rule if rule is not None else "unmatched"


class _ProcessRegistry:
    """Exposes the process-wide registry (module-level metrics) inside an app's registry,
    but for the families named in ``leave_out`` (the app has its own of those)."""

    def __init__(self, leave_out: frozenset[str] = frozenset()) -> None:
        self.leave_out = leave_out

    def collect(self) -> Iterator[Metric]:
        for family in REGISTRY.collect():
            if family.name not in self.leave_out:
                yield family


def require_metrics_token(view: Callable[..., Any]) -> Callable[..., Any]:
    """The ``/metrics`` view, answering 401 without the configured bearer token (if any)."""

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        token: str | None = current_app.extensions["ticketing"].api.metrics_token
        if token is not None:
            if not bearer_token_matches(token):
                raise ApiError(
                    401,
                    "unauthorized",
                    "a valid bearer token is required for /metrics",
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        return view(*args, **kwargs)

    return checked


def init_metrics(app: Flask) -> PrometheusMetrics:
    """Serve ``/metrics`` and record HTTP metrics for ``app``.

    With ``PROMETHEUS_MULTIPROC_DIR`` set, samples of every process are summed
    from that directory. Otherwise each app gets its own registry for the HTTP
    metrics (so several apps in one process, as in tests, don't collide) that
    also exposes the module-level metrics above.

    A test can give the app a registry of its own, as prometheus_client's tests
    do, with ``create_app({"METRICS_REGISTRY": CollectorRegistry()})``: the app's
    HTTP and desk metrics (``ticketing.desk.metrics.DeskMetrics``) are then on
    that registry, the other packages' module-level ones still on the global
    ``REGISTRY`` (``/metrics`` serves both). Not with ``PROMETHEUS_MULTIPROC_DIR``,
    where samples are read from the workers' files: there the setting is ignored.
    """
    options: dict[str, Any] = dict(group_by=path, metrics_decorator=require_metrics_token)
    own: CollectorRegistry | None = app.config.get("METRICS_REGISTRY")
    desk = PROCESS_METRICS
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics = GunicornInternalPrometheusMetrics(app, **options)
    else:
        registry = own if own is not None else CollectorRegistry()
        if own is not None:
            desk = DeskMetrics(own)
        registry.register(_ProcessRegistry(desk.family_names() if own is not None else frozenset()))
        metrics = PrometheusMetrics(app, registry=registry, **options)
    app.extensions[DESK_METRICS] = desk
    app.extensions["ticketing_metrics"] = metrics
    return metrics
