"""Fixtures for the exporter: write a config, run the real CLI, start the real process.

``start_exporter(config)`` runs ``python -m exporter`` on a free port (the
config is a dict dumped to YAML, or a path) and returns an :class:`ExporterProcess`
with ``metrics()`` (the /metrics text) and ``status()`` (the /status JSON).
``run_cli(*args)`` runs the CLI to completion and returns the CompletedProcess.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from tests.harness import free_port, http_ready
from tests.harness.exporter import ROOT, ExporterProcess


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
