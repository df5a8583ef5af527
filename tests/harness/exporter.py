"""The exporter under test: the shipped config (quickened), its CLI, a running exporter."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml
from prometheus_client.core import GaugeMetricFamily

from exporter.collectors.base import CollectFailed, Collector
from tests.harness import ManagedProcess

ROOT = Path(__file__).resolve().parents[2]


SHIPPED_CONFIG = ROOT / "exporter" / "partnerwatch.yml"
#: Collectors of the shipped config: probes, database and Redis health, SQL queries.
SHIPPED_COLLECTORS = 13


def shipped_config() -> dict:
    """The shipped config as a dict, for tests that keep its queries but shorten its timing."""
    return yaml.safe_load(SHIPPED_CONFIG.read_text())


def quicken(
    config: dict, interval: str = "500ms", timeout: str = "500ms", staleness: str = "3s"
) -> dict:
    """Short intervals, timeouts and staleness everywhere (tests must be fast)."""
    config.setdefault("exporter", {})["staleness"] = staleness
    for section in (config.get("collectors") or {}).values():
        section.update(interval=interval, timeout=timeout)
    for query in (config.get("queries") or {}).values():
        query.update(interval=interval, timeout=timeout)
    return config


@dataclass
class ExporterProcess:
    process: ManagedProcess
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def metrics(self) -> str:
        response = requests.get(f"{self.url}/metrics", timeout=10)
        response.raise_for_status()
        return response.text

    def status(self) -> dict:
        return requests.get(f"{self.url}/status", timeout=10).json()["collectors"]


def run_cli(
    *args: str, env: dict | None = None, unset: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """Run ``python -m exporter ARGS`` with ``env`` added and ``unset`` removed."""
    environ = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(
        [sys.executable, "-m", "exporter", *map(str, args)],
        cwd=ROOT,
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


class Switch(Collector):
    """Publishes ``switch_value`` while ``ok``; fails (optionally with families) otherwise."""

    def __init__(self, name="switch", value=1.0, staleness=60.0, interval=0.1):
        super().__init__(name, interval=interval, timeout=1.0, staleness=staleness)
        self.ok = True
        self.value = value
        self.runs = 0
        self.failure_families = False

    def family(self, value):
        family = GaugeMetricFamily("switch_value", "Test value.", labels=["name"])
        family.add_metric([self.name], value)
        return [family]

    def collect(self):
        self.runs += 1
        if not self.ok:
            if self.failure_families:
                raise CollectFailed("down", self.family(0.0))
            raise RuntimeError("broken on purpose")
        return self.family(self.value)
