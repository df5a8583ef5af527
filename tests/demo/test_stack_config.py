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
    Stack(run).prepare_run_dir()  # a stopped stack's directory is emptied and reused
    assert list(run.iterdir()) == []

    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(StartError, match="not a stack's run directory"):
        Stack(other).prepare_run_dir()
    assert (other / "cat.jpg").exists()
