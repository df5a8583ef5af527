"""/metrics as a view of the scheduler's cache.

:class:`CachedCollector` is a prometheus_client custom collector: at scrape
time it yields the families each collector last produced, merged by metric
name, skipping those older than the collector's ``staleness``, followed by
the self metrics. It never runs a query.

    registry = CollectorRegistry()
    registry.register(CachedCollector(scheduler))
    generate_latest(registry)

Self metrics (label ``collector``): ``exporter_collector_success`` (absent
until the first run ends), ``exporter_collector_duration_seconds``,
``exporter_collector_last_success_timestamp_seconds`` (absent until a run
succeeds) and ``exporter_collector_errors_total``.

:class:`EncodedMetrics` is the /metrics WSGI app: it keeps the encoded body
per format (and its gzip form, made from the same body) and encodes the registry again only when a
collector run has ended since, or when the body is a second old (the
``process_*`` figures, and results passing their staleness), so scrapes in
between cost a dictionary lookup instead of an encoding.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector as RegistryCollector

from exporter.collectors.base import Collector
from exporter.scheduler import CollectorState, Scheduler


class CachedCollector(RegistryCollector):
    def __init__(self, scheduler: Scheduler):
        self.scheduler = scheduler

    def describe(self) -> list[Metric]:
        return []  # names vary with the config; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        now = time.monotonic()
        snapshot = self.scheduler.snapshot()
        merged: dict[str, Metric] = {}
        for collector, state in snapshot:
            if state.families_at is None or now - state.families_at > collector.staleness:
                continue
            for family in state.families:
                into = merged.get(family.name)
                if into is None:
                    into = merged[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                into.samples.extend(family.samples)
        yield from merged.values()
        yield from self_metrics(snapshot)


def self_metrics(snapshot: Iterable[tuple[Collector, CollectorState]]) -> list[Metric]:
    success = GaugeMetricFamily(
        "exporter_collector_success",
        "1 when the collector's last run succeeded.",
        labels=["collector"],
    )
    duration = GaugeMetricFamily(
        "exporter_collector_duration_seconds",
        "Duration of the collector's last run.",
        labels=["collector"],
    )
    last = GaugeMetricFamily(
        "exporter_collector_last_success_timestamp_seconds",
        "Unix time of the collector's last successful run.",
        labels=["collector"],
    )
    errors = CounterMetricFamily(
        "exporter_collector_errors",
        "Failed runs of the collector (errors and timeouts).",
        labels=["collector"],
    )
    for collector, state in snapshot:
        labels = [collector.name]
        if state.success is not None:
            success.add_metric(labels, 1.0 if state.success else 0.0)
        if state.duration is not None:
            duration.add_metric(labels, state.duration)
        if state.last_success is not None:
            last.add_metric(labels, state.last_success)
        errors.add_metric(labels, float(state.errors))
    return [success, duration, last, errors]


@dataclass
class _Body:
    """One format's encoded body: the run counter and clock it was encoded at."""

    version: int
    encoded_at: float
    body: bytes
    #: ``body`` compressed, made when a scrape first asks for gzip.
    gzipped: bytes | None = None


class EncodedMetrics:
    """/metrics with the encoded body kept per format until something changes.

    ``version()`` (the scheduler's run counter) is read before encoding, so a
    run that ends while a body is being encoded makes the next scrape encode
    again. Requests other than a plain GET (``OPTIONS``, other methods, the
    ``name[]`` filter) go to prometheus_client's own app.
    """

    def __init__(
        self,
        registry: RegistryCollector,
        version: Callable[[], int],
        max_age: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.registry = registry
        self.version = version
        self.max_age = max_age
        self.clock = clock
        self._uncached: WSGIApplication = make_wsgi_app(registry)
        #: content type -> its body, as last encoded
        self._bodies: dict[str, _Body] = {}
        self._lock = threading.Lock()

    def body(self, accept: str | None, gzipped: bool) -> tuple[str, bytes]:
        """The content type and the (possibly gzipped) body for an Accept header."""
        encoder, content_type = choose_encoder(accept or "")
        version, now = self.version(), self.clock()
        with self._lock:
            cached = self._bodies.get(content_type)
        if cached is None or cached.version != version or now - cached.encoded_at >= self.max_age:
            cached = _Body(version, now, encoder(self.registry))
            with self._lock:
                self._bodies[content_type] = cached
        if not gzipped:
            return content_type, cached.body
        if cached.gzipped is None:  # compressed once, from the same body
            cached.gzipped = gzip.compress(cached.body)
        return content_type, cached.gzipped

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET" or "name[]" in parse_qs(
            environ.get("QUERY_STRING", "")
        ):
            return self._uncached(environ, start_response)
        gzipped = gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", ""))
        content_type, body = self.body(environ.get("HTTP_ACCEPT"), gzipped)
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        if gzipped:
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [body]
