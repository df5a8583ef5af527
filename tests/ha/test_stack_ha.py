"""``./dev run --ha``: two of everything, wired as docs/deployment.md describes.

The stack runner is started in-process (``demo.stack.Stack(ha=True)``, free
ports, fast intervals, no Grafana) and looked at from outside: both ticket
instances answer on one database, both Alertmanagers are one cluster, both
Prometheus replicas scrape every target of both pairs and send to both
Alertmanagers, and VictoriaMetrics holds one series per target.
"""

from __future__ import annotations

import pytest
import requests

from demo.stack import Stack
from tests.harness import wait_until

pytestmark = pytest.mark.slow


def test_the_ha_stack_runs_two_of_everything(tmp_path):
    stack = Stack(tmp_path / "run", free_ports=True, fast=True, grafana=False, ha=True)
    try:
        stack.start()
        u = stack.urls
        headers = {"X-API-Key": stack.keys["partner"]}
        created = requests.post(
            f"{u['ticketing']}/api/v1/tickets",
            headers=headers,
            timeout=10,
            json={"title": "Invoice question", "description": "Wrong total."},
        )
        assert created.status_code == 201, created.text
        seen = requests.get(
            f"{u['ticketing_b']}/api/v1/tickets/{created.json()['id']}", headers=headers, timeout=10
        )
        assert seen.status_code == 200  # the second instance reads the same database

        for name in ("alertmanager", "alertmanager_b"):
            cluster = requests.get(f"{u[name]}/api/v2/status", timeout=10).json()["cluster"]
            assert len(cluster["peers"]) == 2, (name, cluster)

        for name, replica in (("prometheus", "a"), ("prometheus_b", "b")):
            config = requests.get(f"{u[name]}/api/v1/status/config", timeout=10).json()
            assert f"replica: {replica}" in config["data"]["yaml"]
            targets = requests.get(f"{u[name]}/api/v1/targets", timeout=10).json()["data"]
            jobs = {}
            for target in targets["activeTargets"]:
                jobs.setdefault(target["labels"]["job"], set()).add(target["scrapeUrl"])
            assert {job: len(urls) for job, urls in jobs.items()} == {
                "prometheus": 2,
                "alertmanager": 2,
                "ticketing": 2,
                "exporter": 1,
            }, jobs
            ams = requests.get(f"{u[name]}/api/v1/alertmanagers", timeout=10).json()["data"]
            assert len(ams["activeAlertmanagers"]) == 2

        def one_per_target():
            result = requests.get(
                f"{u['victoriametrics']}/api/v1/query",
                params={"query": "count(up) by (job)"},
                timeout=10,
            ).json()
            counts = {r["metric"]["job"]: r["value"][1] for r in result["data"]["result"]}
            return counts == {
                "prometheus": "2",
                "alertmanager": "2",
                "ticketing": "2",
                "exporter": "1",
            }

        # the stack runs VictoriaMetrics with its defaults, so a sample becomes
        # visible to queries 30 s after it was written (-search.latencyOffset)
        wait_until(one_per_target, timeout=90, message="VictoriaMetrics to hold one up per target")
    finally:
        stack.stop()
