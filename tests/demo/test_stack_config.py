"""What the stack runner derives from the shipped files, checked by the programs that read them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import yaml

from demo.stack import Stack, duration_seconds, render_exporter
from demo.supervisor import StartError, spawn


def test_fast_exporter_config_is_valid_and_quick(root, tmp_path):
    shipped = yaml.safe_load((root / "exporter" / "partnerwatch.yml").read_text())
    fast = render_exporter(shipped, fast=True)
    assert render_exporter(shipped, fast=False) == shipped
    sections = {**fast["collectors"], **fast["queries"]}
    for name, section in sections.items():
        limit = 3 if name == "http_probe" else 2
        assert duration_seconds(section["interval"]) <= limit, name
        assert duration_seconds(section.get("timeout", 0)) <= duration_seconds(section["interval"])
    # The probe still waits long enough for the slow-api scenario's 2 s answers.
    assert duration_seconds(fast["collectors"]["http_probe"]["timeout"]) > 2
    path = tmp_path / "exporter.yml"
    path.write_text(yaml.safe_dump(fast, sort_keys=False))
    env = {
        "PLATFORM_DB_URL": f"sqlite:///{tmp_path / 'p.db'}",
        "TICKETING_DB_URL": f"sqlite:///{tmp_path / 't.db'}",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "PLATFORM_API_URL": "http://127.0.0.1:8081",
    }
    done = subprocess.run(
        [sys.executable, "-m", "exporter", "--config", str(path), "--check-config"],
        cwd=root,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "every 2s" in done.stdout and "every 3s" in done.stdout


def test_durations():
    assert duration_seconds("1m30s") == 90
    assert duration_seconds("500ms") == 0.5
    assert duration_seconds(15) == 15
    with pytest.raises(ValueError):
        duration_seconds("soon")


def test_run_dir_of_a_running_stack_or_of_someone_else_is_refused(tmp_path):
    sleeper = spawn(["sleep", "60"], death_signal=signal.SIGKILL)
    try:
        run = tmp_path / "run"
        run.mkdir()
        (run / "stack.json").write_text(json.dumps({"stack_pid": sleeper.pid}))
        with pytest.raises(StartError, match="already running"):
            Stack(run).prepare_run_dir()
    finally:
        sleeper.kill()
        sleeper.wait()
    Stack(run, fresh=True).prepare_run_dir()  # --fresh: a stopped stack's directory is emptied
    assert list(run.iterdir()) == []

    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(StartError, match="not a stack's run directory"):
        Stack(other).prepare_run_dir()
    assert (other / "cat.jpg").exists()


def test_a_stopped_stacks_data_is_kept_unless_fresh(tmp_path):
    run = tmp_path / "run"
    (run / "ticketing" / "metrics").mkdir(parents=True)
    (run / "ticketing" / "metrics" / "counter_123.db").write_bytes(b"old worker")
    (run / "ticketing" / "ticketing.db").write_bytes(b"tickets")
    (run / "platform.db").write_bytes(b"platform")
    (run / "prometheus" / "data").mkdir(parents=True)
    (run / "stack.json").write_text(json.dumps({"stack_pid": None, "keys": {"partner": "pw_x"}}))

    kept = Stack(run)
    kept.prepare_run_dir()
    assert kept.kept
    assert (run / "platform.db").read_bytes() == b"platform"
    assert (run / "ticketing" / "ticketing.db").read_bytes() == b"tickets"
    assert (run / "prometheus" / "data").is_dir()
    # The last run's keys wait for the account setup; a dead worker's metrics do not survive.
    assert json.loads(kept.previous_state.read_text())["keys"] == {"partner": "pw_x"}
    assert not (run / "stack.json").exists()
    assert not (run / "ticketing" / "metrics").exists()
    assert "kept from the last run" in "\n".join(_banner(kept))

    # A run that failed before its accounts were set up wrote no keys: the last ones stay.
    (run / "stack.json").write_text(json.dumps({"stack_pid": None, "keys": {}}))
    Stack(run).prepare_run_dir()
    assert json.loads(kept.previous_state.read_text())["keys"] == {"partner": "pw_x"}

    (run / "stack.json").write_text(json.dumps({"stack_pid": None}))
    fresh = Stack(run, fresh=True)
    fresh.prepare_run_dir()
    assert not fresh.kept and list(run.iterdir()) == []
    assert "new and empty" in "\n".join(_banner(fresh))


def _banner(stack: Stack, grafana: str | None = None, **keys: str) -> list[str]:
    ports = {
        "ticketing": 8000,
        "exporter": 9701,
        "prometheus": 9090,
        "alertmanager": 9093,
        "platform": 8081,
        "sinks": 8025,
    }
    stack.urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    stack.urls.update(console="http://127.0.0.1:8000/console/", redis="redis://127.0.0.1:6379/0")
    stack.urls["smtp"] = "smtp://127.0.0.1:1025"
    if grafana:
        stack.urls["grafana"] = grafana
    stack.keys = {"partner": "pw_partner", "staff": "pw_staff", **keys}
    return stack.banner_lines()


def test_banner_says_where_grafana_runs_and_what_to_open_first(tmp_path):
    stack = Stack(tmp_path / "run")
    text = "\n".join(_banner(stack))
    grafana = text[text.index("Grafana") :].split("demo platform")[0]
    assert "install" not in grafana
    assert "docker-compose" in grafana and "docs/dashboards.md" in grafana
    assert "Open first" in text and "new keys" in text
    stack.keys_kept = True
    assert "the same keys as last time" in "\n".join(_banner(stack))
    lines = _banner(stack, "http://127.0.0.1:3000", grafana_admin="secret")
    assert any(line.split()[:2] == ["Grafana", "http://127.0.0.1:3000"] for line in lines)
