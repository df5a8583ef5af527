"""The monitoring side of partnerwatch as more than one of everything, started once for tests/ha.

``ha_monitoring`` runs, each the real program on loopback ports, the
project's own configuration throughout:

platform DB + API ─> exporter ─┬─> Prometheus replica a ─┬─> Alertmanager 1 ─┐ gossip
                               └─> Prometheus replica b ─┤   Alertmanager 2 ─┘   │
                                                         │                       ├─> SMTP sink
                                                         └─ remote_write ─>      └─> HTTP sink
                                                            VictoriaMetrics        (Slack, webhooks)

- both replicas load ``prometheus/prometheus.yml`` rendered by
  ``prometheus/render.py`` with ``replica="a"`` / ``"b"`` (the external label,
  dropped again from alerts and remote writes), 1 s intervals, each sending to
  both Alertmanagers and remote-writing to VictoriaMetrics; the rules are a
  copy of ``rules/`` with short ``for:`` on the alerts under test (as in
  tests/delivery/test_end_to_end.py);
- the Alertmanagers run the shipped ``alertmanager/alertmanager.yml`` rendered
  for the sinks, clustered (``start_alertmanager_cluster``);
- VictoriaMetrics de-duplicates with ``-dedup.minScrapeInterval=1s``.

Tests that kill a part start it again before they end, so the next test finds
the whole stack; the sinks are cleared by ``ha_monitoring.reset()``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from prometheus.render import render as render_prometheus
from tests.harness import (
    HTTPSink,
    ManagedProcess,
    ProcessGroup,
    SMTPSink,
    free_port,
    http_ready,
    start_alertmanager_cluster,
    start_prometheus,
    start_victoria_metrics,
)
from tests.harness.app import create_test_app, dispose, ticketing_config
from tests.harness.monitoring import HAMonitoring, alertmanager_config, copy_rules, exporter_config
from tests.harness.partner_platform import PlatformAPI, PlatformDatabase

ROOT = Path(__file__).resolve().parents[2]
REPLICAS = ("a", "b")
#: The second Alertmanager waits PEER_TIMEOUT for the first to notify, and the
#: first logs a notification only once its receiver has answered: on a machine
#: busy enough that a sink takes longer than that wait to answer, both notify.
#: A stale repeat (the second sending what it prepared just before the first
#: logged a change) needs the two members' group timers to be apart by more
#: than the time to that change, and they start from the same send of the
#: same Prometheus, milliseconds apart, so a longer wait costs little there.
#: Production keeps Alertmanager's 15 s against a 5 m group_interval.
PEER_TIMEOUT = "3s"
GROUP_INTERVAL = 12


def _ticketing_db(tmp: Path) -> str:
    """A migrated, empty ticketing database for the exporter's support-queue queries."""
    url = f"sqlite:///{tmp / 'ticketing.db'}"
    dispose(create_test_app(ticketing_config(url, ticketing={})))
    return url


@pytest.fixture(scope="package")
def ha_monitoring(tmp_path_factory, redis_server):
    tmp = tmp_path_factory.mktemp("ha-monitoring")
    group = ProcessGroup()
    smtp, http = SMTPSink().start(), HTTPSink().start()
    api = PlatformAPI().start()
    started: list = []
    try:
        platform = PlatformDatabase(tmp / "platform.db", capacity=1000, available=800)
        exporter_port = free_port()
        exporter = group.add(
            ManagedProcess(
                [
                    sys.executable,
                    "-m",
                    "exporter",
                    "--config",
                    str(exporter_config(tmp / "exporter.yml")),
                ],
                tmp,
                name="exporter",
                env={
                    "EXPORTER_LISTEN": f"127.0.0.1:{exporter_port}",
                    "PLATFORM_DB_URL": platform.url,
                    "TICKETING_DB_URL": _ticketing_db(tmp),
                    "REDIS_URL": redis_server.url,
                    "PLATFORM_API_URL": api.url,
                },
            )
        )
        exporter.start(ready=http_ready(f"http://127.0.0.1:{exporter_port}/metrics"))

        vm = start_victoria_metrics(tmp, dedup_interval="1s")
        started.append(vm)
        alertmanagers = start_alertmanager_cluster(
            tmp,
            alertmanager_config(tmp / "am", smtp, http, group_interval=GROUP_INTERVAL),
            size=2,
            peer_timeout=PEER_TIMEOUT,
        )
        started.extend(alertmanagers)

        rules = copy_rules(tmp / "rules")
        ports = {replica: free_port() for replica in REPLICAS}
        targets = {
            "prometheus": [f"127.0.0.1:{p}" for p in ports.values()],
            "alertmanager": [am.address for am in alertmanagers],
            "exporter": [f"127.0.0.1:{exporter_port}"],
            "ticketing": [f"127.0.0.1:{free_port()}"],
        }  # no ticket service here
        prometheus = {}
        for replica, port in ports.items():
            prometheus[replica] = start_prometheus(
                tmp,
                config=render_prometheus(
                    targets=targets,
                    alertmanagers=[am.address for am in alertmanagers],
                    rules_dir=rules,
                    scrape_interval="1s",
                    evaluation_interval="1s",
                    replica=replica,
                    remote_write=[vm.write_url],
                ),
                port=port,
            )
            started.append(prometheus[replica])
        stack = HAMonitoring(
            platform, api, smtp, http, alertmanagers, prometheus, vm, exporter, targets
        )
        for prom in prometheus.values():
            prom.wait_for_value('platform:energy_pool_available:ratio{pool="main"}', 0.8)
        yield stack
    finally:
        for part in reversed(started):
            part.stop()
        group.stop_all()
        api.stop()
        smtp.stop()
        http.stop()
