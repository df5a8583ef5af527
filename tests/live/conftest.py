"""Fixtures for the live feed: everything real, started once per session.

- ``platform_metrics``: a tiny exporter with the platform's metric names and
  values the tests choose (tests/harness/platform_metrics.py);
- ``prometheus``: Prometheus scraping it every second, with the project's own
  recording rules from rules/ (the feed queries their names);
- ``alertmanager``: Alertmanager holding a known set of alerts (``ALERTS``);
- ``ticketing_data``: a migrated SQLite ticketing database with two partners,
  a staff member, their API keys and tickets in every status;
- ``start_live_server(**live_settings)``: the ticket service under gunicorn
  (gthread, as deployed) with its ``live`` section pointing at all of the above;
  ``live_server`` is one shared instance.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.harness import (
    ManagedProcess,
    free_port,
    http_ready,
    start_alertmanager,
    start_prometheus,
)
from tests.harness.app import create_test_app, ticketing_config
from tests.harness.live import (
    ALERTS,
    BULK_ALERTS,
    GUNICORN_CONF,
    RULE_FILES,
    LiveServer,
)
from tests.harness.platform_metrics import PlatformMetrics
from tests.harness.seed import TicketingData, tickets_in_every_status


@pytest.fixture(scope="session")
def platform_metrics():
    source = PlatformMetrics().start()
    source.gauge("platform_api_probe_success", {"target": "platform"}, 1)
    source.gauge("platform_api_probe_duration_seconds", {"target": "platform"}, 0.123)
    source.gauge("platform_energy_pool_available_units", {"pool": "main"}, 250)
    source.gauge("platform_energy_pool_capacity_units", {"pool": "main"}, 1000)
    source.gauge("platform_energy_pool_available_units", {"pool": "reserve"}, 90)
    source.gauge("platform_energy_pool_capacity_units", {"pool": "reserve"}, 100)
    source.gauge("platform_partners_active", {}, 7)
    for status, priority, count in [
        ("open", "high", 4),
        ("in_progress", "high", 1),
        ("open", "low", 2),
        ("resolved", "critical", 9),
        ("closed", "medium", 5),
    ]:
        source.gauge("support_tickets", {"status": status, "priority": priority}, count)
    source.counter("platform_transactions_total", {"status": "completed"}, per_second=20)
    source.counter("platform_transactions_total", {"status": "failed"}, per_second=2)
    source.counter("platform_transactions_total", {"status": "pending"}, per_second=1)
    source.counter("flask_http_request_total", {"method": "GET", "status": "200"}, per_second=9)
    source.counter("flask_http_request_total", {"method": "GET", "status": "500"}, per_second=1)
    yield source
    source.stop()


def _start_prometheus(workdir: Path, platform_metrics: PlatformMetrics):
    prom = start_prometheus(
        workdir,
        [{"job_name": "exporter", "static_configs": [{"targets": [platform_metrics.address]}]}],
        rule_files=RULE_FILES,
    )
    # Rates need two samples; the rules need a rate.
    prom.wait_for("platform:transactions_failed:ratio_rate5m", timeout=60)
    prom.wait_for("ticketing:http_5xx:ratio_rate5m", timeout=60)
    prom.wait_for("platform:api_probe_duration_seconds:p95_5m", timeout=60)
    return prom


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory, platform_metrics):
    prom = _start_prometheus(tmp_path_factory.mktemp("prometheus"), platform_metrics)
    yield prom
    prom.stop()


@pytest.fixture
def private_prometheus(tmp_path, platform_metrics):
    """A Prometheus of the test's own, which it may stop and start."""
    prom = _start_prometheus(tmp_path, platform_metrics)
    yield prom
    prom.stop()


@pytest.fixture(scope="session")
def alertmanager(tmp_path_factory):
    am = start_alertmanager(
        tmp_path_factory.mktemp("alertmanager"),
        {
            "route": {"receiver": "null", "group_wait": "1h"},
            "receivers": [{"name": "null"}],
        },
    )
    ends = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    am.post_alerts(
        [
            {"labels": labels, "annotations": annotations, "endsAt": ends}
            for labels, annotations in ALERTS + BULK_ALERTS
        ]
    )
    yield am
    am.stop()


@pytest.fixture(scope="session")
def ticketing_app(tmp_path_factory):
    """The ticket service app on the test database (to change data under the servers)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('ticketing') / 'ticketing.db'}"
    return create_test_app(ticketing_config(url, ticketing={}))


@pytest.fixture(scope="session")
def ticketing_data(ticketing_app) -> TicketingData:
    return tickets_in_every_status(ticketing_app)


@pytest.fixture(scope="session")
def start_live_server(tmp_path_factory, ticketing_data, prometheus, alertmanager):
    """Start the ticket service under gunicorn; keyword arguments go to its ``live`` section.

    Every test here connects from 127.0.0.1 and several offer wrong keys on
    purpose, so the ``login`` limit is raised unless ``ratelimits`` says otherwise.
    """
    started: list[ManagedProcess] = []

    def start(
        threads: int = 64, prometheus_url: str | None = None, ratelimits: dict | None = None, **live
    ) -> LiveServer:
        port = free_port()
        workdir = tmp_path_factory.mktemp(f"ticketing-{port}")
        settings = {
            "interval": "1s",
            "query_timeout": "0.8s",
            "ping_interval": "2s",
            "reauth_interval": "2s",
            "auth_timeout": "2s",
            "send_timeout": "1s",
            "queue_size": 2,
            "max_alerts": 100,
            "prometheus_url": prometheus_url or prometheus.url,
            "alertmanager_url": alertmanager.url,
            **live,
        }
        config = workdir / "ticketing.yml"
        limits = ratelimits or {"limits": {"login": "1000/minute"}}
        config.write_text(yaml.safe_dump({"live": settings, "ratelimits": limits}))
        cmd = [sys.executable, "-m", "gunicorn"]
        if GUNICORN_CONF.exists():
            cmd += ["-c", str(GUNICORN_CONF)]
        cmd += [
            "--worker-class",
            "gthread",
            "--workers",
            "1",
            "--threads",
            str(threads),
            "--bind",
            f"127.0.0.1:{port}",
            "--no-control-socket",
            "--graceful-timeout",
            "5",
            "ticketing:create_app()",
        ]
        env = {"TICKETING_DATABASE_URL": ticketing_data.url, "TICKETING_CONFIG": str(config)}
        proc = ManagedProcess(cmd, workdir, name="gunicorn", env=env)
        started.append(proc)
        proc.start(ready=http_ready(f"http://127.0.0.1:{port}/healthz"), timeout=60)
        return LiveServer(proc, port, ticketing_data)

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture(scope="session")
def live_server(start_live_server) -> LiveServer:
    return start_live_server()
