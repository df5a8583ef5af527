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
"""
from __future__ import annotations

import time

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector as RegistryCollector

from .scheduler import Scheduler


class CachedCollector(RegistryCollector):
    def __init__(self, scheduler: Scheduler):
        self.scheduler = scheduler

    def describe(self):
        return []  # names vary with the config; nothing to check at registration

    def collect(self):
        now = time.monotonic()
        snapshot = self.scheduler.snapshot()
        merged: dict[str, Metric] = {}
        for collector, state in snapshot:
            if state.families_at is None or now - state.families_at > collector.staleness:
                continue
            for family in state.families:
                into = merged.get(family.name)
                if into is None:
                    into = merged[family.name] = Metric(family.name, family.documentation,
                                                        family.type, family.unit)
                into.samples.extend(family.samples)
        yield from merged.values()
        yield from self_metrics(snapshot)


def self_metrics(snapshot) -> list[Metric]:
    success = GaugeMetricFamily("exporter_collector_success",
                                "1 when the collector's last run succeeded.", labels=["collector"])
    duration = GaugeMetricFamily("exporter_collector_duration_seconds",
                                 "Duration of the collector's last run.", labels=["collector"])
    last = GaugeMetricFamily("exporter_collector_last_success_timestamp_seconds",
                             "Unix time of the collector's last successful run.",
                             labels=["collector"])
    errors = CounterMetricFamily("exporter_collector_errors",
                                 "Failed runs of the collector (errors and timeouts).",
                                 labels=["collector"])
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
