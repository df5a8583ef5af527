"""VictoriaMetrics holds one de-duplicated copy of what the HA pair scrapes, and answers the
dashboards.

Both Prometheus replicas (tests/ha/conftest.py) remote-write every sample with
the ``replica`` label dropped, so the two copies of a series arrive as one
series; ``-dedup.minScrapeInterval=1s`` (the scrape interval) keeps one sample
of it per second. Every panel query of grafana/dashboards is then sent to
VictoriaMetrics's Prometheus-compatible API, as Grafana's second datasource
would send it, and must give the same series as a replica does, each once.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.harness.dashboards import DATASOURCES, panel_queries

pytestmark = pytest.mark.slow


def label_sets(result: list[dict]) -> list[str]:
    return sorted(json.dumps(r["metric"], sort_keys=True) for r in result)


def test_one_series_per_target_not_one_per_replica(ha_monitoring):
    stack = ha_monitoring
    vm, prom = stack.vm, stack.prometheus["a"]
    stack.reset()  # every replica running (an earlier test may have killed one)
    want = {(job, target) for job, targets in stack.targets.items() for target in targets}
    vm.wait_for(
        "up",
        lambda r: {(s["metric"]["job"], s["metric"]["instance"]) for s in r} == want,
        timeout=60,
    )
    vm.flush()
    up = vm.query("up")
    assert len(up) == len(want), label_sets(up)
    assert not [s for s in up if "replica" in s["metric"]]
    assert label_sets(up) == label_sets(prom.query("up"))

    # One sample per scrape interval, not one per replica: over 20 s about 20, never 40.
    # (Right after the stack starts, or after a replica restarted, the window
    # first fills up: wait until it holds 20 s of samples.)
    window = 20
    expr = f'count_over_time(up{{job="exporter"}}[{window}s])'

    def filled(result):
        vm.flush()
        return len(result) == 1 and float(result[0]["value"][1]) >= window - 3

    vm.wait_for(expr, filled, timeout=90)
    assert prom.value(expr) >= window - 3  # each replica scraped the whole window
    deduped = vm.value(expr)
    assert window - 3 <= deduped <= window + 1, deduped


def test_dashboard_queries_answer_the_same_series_from_victoria_metrics(ha_monitoring):
    stack = ha_monitoring
    vm, prom = stack.vm, stack.prometheus["a"]
    stack.reset()  # every replica running (an earlier test may have killed one)
    prom.wait_for('count_over_time(up{job="exporter"}[10s]) >= 8', timeout=60)
    vm.wait_for('count_over_time(up{job="exporter"}[10s]) >= 8', timeout=60)
    vm.flush()
    at = time.time() - 2  # both have every sample up to here
    compared, with_data = 0, 0
    mismatched = []
    for query in panel_queries():
        expected = prom.api("query", query=query.promql, time=at)["result"]
        got = vm.api("query", query=query.promql, time=at)["result"]
        compared += 1
        if not isinstance(expected, list):  # a scalar
            continue
        series = label_sets(got)
        assert len(series) == len(set(series)), f"{query}: duplicate series {series}"
        assert not [s for s in got if "replica" in s["metric"]], query
        if expected:
            with_data += 1
        if series != label_sets(expected):
            mismatched.append(
                f"{query}: {query.promql}\n  Prometheus {label_sets(expected)}"
                f"\n  VictoriaMetrics {series}"
            )
    assert compared > 20 and with_data > 10, (compared, with_data)
    assert not mismatched, "\n".join(mismatched)


def test_grafana_provisions_victoria_metrics_as_a_second_datasource():
    import yaml

    sources = {}
    for path in sorted(DATASOURCES.glob("*.yml")):
        for source in yaml.safe_load(path.read_text()).get("datasources", []):
            sources[source["uid"]] = source
    assert sources["prometheus"]["isDefault"] is True
    vm = sources["victoriametrics"]
    # Grafana's Prometheus plugin speaks VictoriaMetrics's query API.
    assert vm["type"] == "prometheus" and vm["url"] == "${VICTORIAMETRICS_URL}"
    assert not vm.get("isDefault")
