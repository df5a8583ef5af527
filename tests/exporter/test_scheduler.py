"""The scheduler and the scrape view, in process: deadlines, staleness, isolation, caching.

These collectors are small real ones (no services needed): one that blocks
until released, one whose outcome the test switches, one that counts runs.
Values are read back from a fresh registry with ``get_sample_value``.
"""

from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from exporter.collectors.base import Collector
from exporter.scheduler import Scheduler
from exporter.scrape import CachedCollector
from tests.harness import wait_until
from tests.harness.exporter import Switch


class Blocking(Collector):
    """Blocks in collect() until ``release`` is set: a hung query."""

    def __init__(self):
        super().__init__("blocking", interval=0.1, timeout=0.2, staleness=60.0)
        self.release = threading.Event()

    def collect(self):
        self.release.wait(30)
        return []

    def timeout_families(self):
        family = GaugeMetricFamily("blocking_up", "Up.")
        family.add_metric([], 0.0)
        return [family]


def registry_for(scheduler):
    registry = CollectorRegistry()
    registry.register(CachedCollector(scheduler))
    return registry


def test_a_hung_run_times_out_and_the_schedule_goes_on():
    blocking = Blocking()
    scheduler = Scheduler([blocking])
    registry = registry_for(scheduler)
    labels = {"collector": "blocking"}
    threads_before = threading.active_count()

    state = scheduler.run_once(blocking)
    assert (state.success, state.errors) == (False, 1)
    assert state.last_error == "timed out after 0.2s"
    assert registry.get_sample_value("exporter_collector_success", labels) == 0
    assert registry.get_sample_value("blocking_up") == 0  # the probe-style failure series

    # Still stuck: the next run does not pile a second thread on top of it.
    state = scheduler.run_once(blocking)
    assert state.errors == 2
    assert state.last_error.startswith("previous run still in progress")
    assert threading.active_count() <= threads_before + 1  # the one hung run, nothing piled up

    blocking.release.set()
    wait_until(
        lambda: not any(t.name == "collect blocking" for t in threading.enumerate()),
        timeout=10,
        message="the hung worker to finish",
    )
    state = scheduler.run_once(blocking)
    assert state.success is True and state.errors == 2
    assert registry.get_sample_value("exporter_collector_success", labels) == 1
    assert registry.get_sample_value("exporter_collector_errors_total", labels) == 2
    assert (
        registry.get_sample_value("exporter_collector_last_success_timestamp_seconds", labels) > 0
    )


def test_failing_collector_goes_stale_and_others_keep_reporting():
    flaky = Switch("flaky", value=3.0, staleness=0.3)
    steady = Switch("steady", value=7.0, staleness=0.3)
    scheduler = Scheduler([flaky, steady])
    registry = registry_for(scheduler)
    scheduler.run_once(flaky)
    scheduler.run_once(steady)
    assert registry.get_sample_value("switch_value", {"name": "flaky"}) == 3

    flaky.ok = False
    state = scheduler.run_once(flaky)
    assert state.last_error == "RuntimeError: broken on purpose"
    # Within the staleness window the last good values are still served ...
    assert registry.get_sample_value("switch_value", {"name": "flaky"}) == 3
    assert registry.get_sample_value("exporter_collector_success", {"collector": "flaky"}) == 0
    time.sleep(0.4)
    scheduler.run_once(steady)
    # ... after it they are dropped, while the healthy collector's stay fresh.
    assert registry.get_sample_value("switch_value", {"name": "flaky"}) is None
    assert registry.get_sample_value("switch_value", {"name": "steady"}) == 7
    assert registry.get_sample_value("exporter_collector_success", {"collector": "steady"}) == 1

    flaky.ok = True
    scheduler.run_once(flaky)
    assert registry.get_sample_value("switch_value", {"name": "flaky"}) == 3


def test_failure_families_replace_the_cached_ones():
    probe = Switch("probe", value=1.0)
    probe.failure_families = True
    scheduler = Scheduler([probe])
    registry = registry_for(scheduler)
    scheduler.run_once(probe)
    probe.ok = False
    scheduler.run_once(probe)
    assert registry.get_sample_value("switch_value", {"name": "probe"}) == 0
    assert registry.get_sample_value("exporter_collector_success", {"collector": "probe"}) == 0


def test_scrapes_never_run_collectors():
    counting = Switch("counting")
    scheduler = Scheduler([counting])
    registry = registry_for(scheduler)
    scheduler.run_once(counting)
    for _ in range(50):  # fifty scrapes, say from two Prometheus replicas
        assert b'switch_value{name="counting"} 1.0' in generate_latest(registry)
    assert counting.runs == 1


def test_collectors_run_on_their_own_schedules():
    fast, slow = Switch("fast", interval=0.05), Switch("slow", interval=30)
    scheduler = Scheduler([fast, slow])
    scheduler.start()
    try:
        wait_until(lambda: fast.runs >= 5, timeout=10, message="five runs of the fast one")
    finally:
        scheduler.stop()
    assert slow.runs == 1  # ran once at start, next run is 30 s away


def test_families_of_several_collectors_merge_by_name():
    a, b = Switch("a", 1.0), Switch("b", 2.0)
    scheduler = Scheduler([a, b])
    scheduler.run_once(a)
    scheduler.run_once(b)
    text = generate_latest(registry_for(scheduler)).decode()
    assert text.count("# TYPE switch_value gauge") == 1
    assert 'switch_value{name="a"} 1.0' in text and 'switch_value{name="b"} 2.0' in text


def test_self_metrics_before_the_first_run():
    scheduler = Scheduler([Switch("new")])
    registry = registry_for(scheduler)
    labels = {"collector": "new"}
    assert registry.get_sample_value("exporter_collector_errors_total", labels) == 0
    assert registry.get_sample_value("exporter_collector_success", labels) is None
    assert (
        registry.get_sample_value("exporter_collector_last_success_timestamp_seconds", labels)
        is None
    )
