"""A tiny exporter for the live feed tests: platform metric names, values the test sets.

Prometheus scrapes it like the real exporter; the test decides what the
platform looks like (probe results, energy pools, transaction counters that
grow at a chosen rate, ticket gauges, ticket service request counters):

    source = PlatformMetrics().start()
    source.gauge("platform_partners_active", {}, 3)
    source.counter("platform_transactions_total", {"status": "failed"}, per_second=2)
    # Prometheus: {"job_name": "exporter", "static_configs": [{"targets": [source.address]}]}
"""

from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from tests.harness import free_port

Labels = tuple[tuple[str, str], ...]


class PlatformMetrics:
    def __init__(self) -> None:
        self.port = free_port()
        self._lock = threading.Lock()
        self._gauges: dict[str, dict[Labels, float]] = {}
        #: name -> labels -> (value at `since`, increase per second, since)
        self._counters: dict[str, dict[Labels, tuple[float, float, float]]] = {}
        self._server = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def gauge(self, name: str, labels: dict[str, str], value: float) -> None:
        with self._lock:
            self._gauges.setdefault(name, {})[tuple(sorted(labels.items()))] = value

    def counter(
        self, name: str, labels: dict[str, str], per_second: float, start: float = 0.0
    ) -> None:
        """A counter that grows by ``per_second`` from now on (from its current value)."""
        key = tuple(sorted(labels.items()))
        now = time.time()
        with self._lock:
            series = self._counters.setdefault(name, {})
            if key in series:
                value, rate, since = series[key]
                start = value + rate * (now - since)
            series[key] = (start, per_second, now)

    def collect(self):
        now = time.time()
        with self._lock:
            gauges = {n: dict(s) for n, s in self._gauges.items()}
            counters = {n: dict(s) for n, s in self._counters.items()}
        for name, series in gauges.items():
            names = sorted({k for labels in series for k, _ in labels})
            family = GaugeMetricFamily(name, name, labels=names)
            for labels, value in series.items():
                values = dict(labels)
                family.add_metric([values.get(n, "") for n in names], value)
            yield family
        for name, series in counters.items():
            names = sorted({k for labels in series for k, _ in labels})
            family = CounterMetricFamily(name.removesuffix("_total"), name, labels=names)
            for labels, (value, rate, since) in series.items():
                values = dict(labels)
                family.add_metric([values.get(n, "") for n in names], value + rate * (now - since))
            yield family

    def start(self) -> PlatformMetrics:
        registry = CollectorRegistry()
        registry.register(self)
        self._server, _thread = start_http_server(self.port, addr="127.0.0.1", registry=registry)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
