"""Fixtures for the exporter: write a config, run the real CLI, start the real process.

``start_exporter(config)`` runs ``python -m exporter`` on a free port (the
config is a dict dumped to YAML, or a path) and returns an :class:`ExporterProcess`
with ``metrics()`` (the /metrics text) and ``status()`` (the /status JSON).
``run_cli(*args)`` runs the CLI to completion and returns the CompletedProcess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from tests.harness import ManagedProcess, free_port, http_ready

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = ROOT / "exporter" / "partnerwatch.yml"


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


@pytest.fixture
def write_config(tmp_path):
    def write(config: dict | str, name: str = "exporter.yml") -> Path:
        path = tmp_path / name
        path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
        return path

    return write


@pytest.fixture
def start_exporter(processes, tmp_path, write_config):
    def start(config: dict | Path, env: dict | None = None) -> ExporterProcess:
        path = config if isinstance(config, Path) else write_config(config)
        port = free_port()
        proc = processes.start(
            [
                sys.executable,
                "-m",
                "exporter",
                "--config",
                str(path),
                "--listen",
                f"127.0.0.1:{port}",
                "--log-level",
                "DEBUG",
            ],
            tmp_path,
            name=f"exporter-{port}",
            env={"PYTHONPATH": str(ROOT), **(env or {})},
            ready=http_ready(f"http://127.0.0.1:{port}/metrics"),
        )
        return ExporterProcess(proc, port)

    return start


@pytest.fixture
def scrape(prometheus_factory):
    """A Prometheus scraping the given exporters twice a second."""

    def make(*exporters: ExporterProcess):
        return prometheus_factory(
            [
                {
                    "job_name": "exporter",
                    "scrape_interval": "500ms",
                    "scrape_timeout": "500ms",
                    "static_configs": [{"targets": [e.address for e in exporters]}],
                }
            ]
        )

    return make
