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
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask_migrate import upgrade

from prometheus.render import render as render_prometheus
from tests.delivery.platform import PlatformAPI, PlatformDatabase
from tests.delivery.test_end_to_end import alertmanager_config, copy_rules, exporter_config
from tests.harness import (
    Alertmanager,
    HTTPSink,
    ManagedProcess,
    ProcessGroup,
    Prometheus,
    SMTPSink,
    VictoriaMetrics,
    free_port,
    http_ready,
    start_alertmanager_cluster,
    start_prometheus,
    start_victoria_metrics,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]
REPLICAS = ("a", "b")
#: The second Alertmanager waits PEER_TIMEOUT for the first to notify. A
#: notification it prepared just before an alert resolved is sent after that
#: wait unless the first has not yet logged the resolution: the shorter the
#: wait against group_interval, the rarer that stale repeat (about
#: (peer_timeout / group_interval)^2 / 2 per change of a group), as in
#: production, where 15 s against 5 m make it rare.
PEER_TIMEOUT = "1s"
GROUP_INTERVAL = 12


@dataclass
class HAMonitoring:
    platform: PlatformDatabase
    api: PlatformAPI
    smtp: SMTPSink
    http: HTTPSink
    alertmanagers: list[Alertmanager]
    prometheus: dict[str, Prometheus]
    vm: VictoriaMetrics
    exporter: ManagedProcess
    targets: dict[str, list[str]] = field(default_factory=dict)

    def reset(self) -> None:
        """Healthy platform, every part running, the sinks emptied."""
        self.platform.set_available(800)
        self.api.delay = 0
        for prom in self.prometheus.values():
            if not prom.process.running():
                prom.start()
        if not all(am.process.running() for am in self.alertmanagers):
            # A member came back from a crash: start the whole cluster afresh. A
            # restarted member has a new peer name, and until the gossip has
            # caught up its peer may not see what it notified and notify again
            # (Alertmanager's cluster is at-least-once; docs/deployment.md).
            for am in self.alertmanagers:
                if am.process.running():
                    am.stop()
            for am in self.alertmanagers:
                am.start()

        # Every member settled and seeing the same members: a restarted member
        # has a new peer name, and until both agree on the member list both can
        # take the first position and notify.
        def cluster_formed() -> bool:
            views = []
            for am in self.alertmanagers:
                status = am.cluster_status()
                names = frozenset(p["name"] for p in status.get("peers") or [])
                if status.get("status") != "ready" or len(names) != len(self.alertmanagers):
                    return False
                views.append(names)
            return len(set(views)) == 1

        wait_until(cluster_formed, timeout=60, message="the Alertmanager cluster to re-form")
        for prom in self.prometheus.values():
            prom.wait_for(
                'ALERTS{alertname=~"EnergyPool.*|PlatformApiSlow"}', lambda r: not r, timeout=60
            )
        for am in self.alertmanagers:
            wait_until(
                lambda: (
                    not [
                        a
                        for a in am.alerts()
                        if a["labels"]["alertname"]
                        in ("EnergyPoolCritical", "EnergyPoolLow", "PlatformApiSlow")
                    ]
                ),
                timeout=60,
                message="Alertmanager to resolve the alerts under test",
            )
        self.smtp.clear()
        self.http.clear()


def _ticketing_db(tmp: Path) -> str:
    """A migrated, empty ticketing database for the exporter's support-queue queries."""
    from ticketing import create_app
    from ticketing.db import db

    url = f"sqlite:///{tmp / 'ticketing.db'}"
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade()
        db.engine.dispose()
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
