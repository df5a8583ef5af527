"""The live feed under test: the alerts Alertmanager holds, rule files, a gunicorn server."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tests.harness import ManagedProcess
from tests.harness.seed import TicketingData
from tests.harness.services import scraped

ROOT = Path(__file__).resolve().parents[2]


RULE_FILES = [
    ROOT / "rules" / f"{name}.rules.yml"
    for name in ("platform-api", "energy", "ticketing", "transactions")
]


GUNICORN_CONF = ROOT / "ticketing" / "runtime" / "gunicorn.conf.py"


#: What Alertmanager holds: (labels, annotations). Partners may see only
#: PlatformApiDown and EnergyPoolLow (allow-listed, team oncall) and Globex's
#: own PlatformApiSlow; everything else is staff-only or hidden.
ALERTS = [
    (
        {
            "alertname": "PlatformApiDown",
            "severity": "critical",
            "team": "oncall",
            "target": "platform",
        },
        {
            "summary": "Platform API platform is down",
            "description": "internal: probe failing",
            "runbook_url": "https://runbooks.example/PlatformApiDown",
        },
    ),
    (
        {"alertname": "EnergyPoolLow", "severity": "warning", "team": "oncall", "pool": "main"},
        {"summary": "Energy pool main is at 25%", "description": "internal detail"},
    ),
    (
        {"alertname": "PlatformApiSlow", "severity": "warning", "team": "oncall", "partner": "2"},
        {"summary": "Platform API answers slowly for Globex"},
    ),
    (
        {"alertname": "SecurityBruteForce", "severity": "warning", "team": "security"},
        {"summary": "Brute-force attempt on the ticket API", "description": "from 10.0.0.7"},
    ),
    (
        {
            "alertname": "SupportFirstResponseOverdue",
            "severity": "warning",
            "team": "support",
            "priority": "high",
        },
        {"summary": "3 high tickets are past their first-response target"},
    ),
    (
        {"alertname": "TargetDown", "severity": "critical", "team": "oncall", "job": "exporter"},
        {"summary": "Scrape target exporter is down"},
    ),
    (
        {"alertname": "Watchdog", "severity": "info", "team": "oncall"},
        {"summary": "Alerting pipeline heartbeat"},
    ),
]


#: Padding alerts that make a staff snapshot some 20 KB (a client that stops
#: reading then fills its socket buffers within a few snapshots).
BULK_ALERTS = [
    (
        {"alertname": f"BulkInfo{i:02d}", "severity": "info", "team": "oncall"},
        {"summary": f"padding alert {i}", "description": "x" * 600},
    )
    for i in range(30)
]


@dataclass
class LiveServer:
    process: ManagedProcess
    port: int
    data: TicketingData

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/monitoring"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def worker_pid(self) -> int:
        """The gunicorn worker (the master's only child)."""
        master = self.process.pid
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                    return int(entry)
        raise RuntimeError("no gunicorn worker found")

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` (with these labels) on the service's /metrics."""
        return scraped(f"{self.http_url}/metrics", name, **labels)
