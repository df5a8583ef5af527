"""Prometheus metrics: in one process, and summed across gunicorn workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import free_port, http_ready, wait_until
from tests.harness.app import create_test_app, dispose, ticketing_config
from tests.harness.seed import Maker
from ticketing.db import db

ROOT = Path(__file__).resolve().parents[2]


def _value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def _sum(samples, name: str, **labels) -> float:
    return sum(
        v
        for (n, ls), v in samples.items()
        if n == name and all(dict(ls).get(k) == v2 for k, v2 in labels.items())
    )


def test_domain_metrics_count_what_happened(app, client, make):
    acme = make.partner()
    agent = make.staff()
    created = _value("support_tickets_created_total", priority="high", category="energy")
    partner_messages = _value("support_ticket_messages_total", sender_type="partner")
    staff_messages = _value("support_ticket_messages_total", sender_type="staff")
    first = _value("support_ticket_first_response_seconds_count", priority="high")
    resolved = _value("support_ticket_resolution_seconds_count", priority="high")

    tid = make.ticket(acme, title="Urgent: pool empty", description="no energy units")["id"]
    client.post(f"/api/v1/tickets/{tid}/messages", headers=acme.headers, json={"body": "hi"})
    client.post(
        f"/api/v1/staff/tickets/{tid}/messages",
        headers=agent.headers,
        json={"body": "note", "internal": True},
    )
    client.post(
        f"/api/v1/staff/tickets/{tid}/messages", headers=agent.headers, json={"body": "hello"}
    )
    client.post(
        f"/api/v1/staff/tickets/{tid}/messages", headers=agent.headers, json={"body": "and again"}
    )
    client.post(
        f"/api/v1/staff/tickets/{tid}/status", headers=agent.headers, json={"status": "resolved"}
    )
    # Refused requests count nothing.
    client.post("/api/v1/tickets", headers=acme.headers, json={"title": "x"})
    client.post(
        f"/api/v1/staff/tickets/{tid}/status", headers=agent.headers, json={"status": "resolved"}
    )

    assert (
        _value("support_tickets_created_total", priority="high", category="energy") == created + 1
    )
    assert _value("support_ticket_messages_total", sender_type="partner") == partner_messages + 1
    assert _value("support_ticket_messages_total", sender_type="staff") == staff_messages + 3
    assert _value("support_ticket_first_response_seconds_count", priority="high") == first + 1
    assert _value("support_ticket_resolution_seconds_count", priority="high") == resolved + 1

    text = client.get("/metrics").get_data(as_text=True)
    samples = _samples(text)
    assert (
        _sum(
            samples,
            "flask_http_request_duration_seconds_count",
            method="POST",
            path="/api/v1/tickets",
            status="201",
        )
        == 1
    )
    assert (
        _sum(
            samples,
            "flask_http_request_duration_seconds_count",
            method="POST",
            path="/api/v1/staff/tickets/<id:ticket_id>/status",
            status="409",
        )
        == 1
    )
    assert _sum(samples, "support_tickets_created_total") >= 1
    # The path label is always a route template (bounded), never a raw URL.
    templates = {rule.rule for rule in app.url_map.iter_rules()} | {"unmatched"}
    paths = {dict(ls)["path"] for (_, ls) in samples if "path" in dict(ls)}
    assert paths and paths <= templates, paths - templates


@pytest.fixture
def gunicorn_site(tmp_path):
    """A SQLite database migrated by the console script, with a partner and its key."""
    url = f"sqlite:///{tmp_path / 'ticketing.db'}"
    env = {
        **os.environ,
        "TICKETING_DATABASE_URL": url,
        "TICKETING_CONFIG": str(tmp_path / "ticketing.yml"),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    (tmp_path / "ticketing.yml").write_text(
        "ratelimits: {enabled: false}\noutbox: {worker: false}\n"
    )
    script = str(Path(sys.executable).with_name("partnerwatch-ticketing"))
    result = subprocess.run(
        [script, "db", "upgrade"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    app = create_test_app(ticketing_config(url, tmp_path), migrate=False)
    key = Maker(app, app.test_client()).partner("Acme").key
    with app.app_context():
        db.engine.dispose()
    return env, key


def test_gunicorn_workers_share_metrics(tmp_path, processes, gunicorn_site):
    env, key = gunicorn_site
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale file of an earlier run")
    env = {
        **env,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "TICKETING_WORKERS": "3",
        "TICKETING_BIND": f"127.0.0.1:{port}",
    }
    server = processes.start(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "-c",
            str(ROOT / "ticketing" / "runtime" / "gunicorn.conf.py"),
            "--worker-class",
            "sync",
        ],
        tmp_path,
        name="gunicorn",
        env=env,
        ready=http_ready(f"http://127.0.0.1:{port}/readyz"),
        timeout=60,
    )
    base = f"http://127.0.0.1:{port}"
    workers = wait_until(
        lambda: _children(server.pid) if len(_children(server.pid)) == 3 else None,
        timeout=30,
        message="3 gunicorn workers",
    )

    def create(i: int) -> int:
        r = requests.post(
            f"{base}/api/v1/tickets",
            headers={"X-API-Key": key},
            timeout=30,
            json={"title": f"Urgent {i}", "description": "energy pool empty"},
        )
        assert r.status_code == 201, r.text
        return r.json()["id"]

    with ThreadPoolExecutor(max_workers=6) as pool:
        ids = list(pool.map(create, range(30)))
    assert len(set(ids)) == 30

    # Several workers served the requests, each writing its own files...
    pids = {int(p.stem.rsplit("_", 1)[1]) for p in metrics_dir.glob("counter_*.db")}
    assert 999999 not in pids  # the stale file was removed at start
    assert len(pids & set(workers)) >= 2, (pids, workers)

    # ...and whichever worker answers /metrics, it reports all of them.
    def totals():
        samples = _samples(requests.get(f"{base}/metrics", timeout=10).text)
        return (
            _sum(samples, "support_tickets_created_total", priority="high", category="energy"),
            _sum(
                samples,
                "flask_http_request_duration_seconds_count",
                method="POST",
                path="/api/v1/tickets",
                status="201",
            ),
        )

    for _ in range(9):
        assert totals() == (30, 30)

    # A worker that dies keeps its counts (its files stay), and its replacement adds up.
    os.kill(workers[0], signal.SIGKILL)
    wait_until(
        lambda: len(_children(server.pid)) == 3 and workers[0] not in _children(server.pid),
        timeout=30,
        message="worker replaced",
    )
    create(31)
    for _ in range(6):
        assert totals() == (31, 31)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def test_the_shipped_gunicorn_config_opens_a_control_socket_only_when_asked(monkeypatch, tmp_path):
    """gunicorn's default control socket path is shared by every gunicorn of the user."""
    import runpy

    conf = str(ROOT / "ticketing" / "runtime" / "gunicorn.conf.py")
    # The file sets it when unset; keep that out of this test process.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.delenv("TICKETING_CONTROL_SOCKET", raising=False)
    assert runpy.run_path(conf)["control_socket_disable"] is True
    monkeypatch.setenv("TICKETING_CONTROL_SOCKET", "/run/ticketing/gunicorn.ctl")
    settings = runpy.run_path(conf)
    assert settings["control_socket_disable"] is False
    assert settings["control_socket"] == "/run/ticketing/gunicorn.ctl"


def test_an_app_with_its_own_registry_counts_there_and_nowhere_else(app_config):
    """As client_python's tests do: a fresh registry per app, read back by name."""
    registry = CollectorRegistry()
    app = create_test_app({**app_config, "METRICS_REGISTRY": registry})
    try:
        client = app.test_client()
        make = Maker(app, client)
        labels = {"priority": "high", "category": "energy"}
        global_before = _value("support_tickets_created_total", **labels)
        make.ticket(make.partner(), title="Urgent: pool empty", description="no energy units")

        assert registry.get_sample_value("support_tickets_created_total", labels) == 1
        assert _value("support_tickets_created_total", **labels) == global_before
        samples = _samples(client.get("/metrics").get_data(as_text=True))
        assert _sum(samples, "support_tickets_created_total", **labels) == 1  # served once
    finally:
        dispose(app)
