"""The stack's small supervisor: readiness, start failures, and stopping whole process groups."""

from __future__ import annotations

import os
import signal
import sys
import textwrap

import pytest

from demo.supervisor import (
    StartError,
    Supervisor,
    free_port,
    http_ready,
    port_free,
    spawn,
    tcp_ready,
)
from tests.harness import wait_until


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone for our purpose (its parent has not reaped it yet).
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_start_waits_until_ready_and_stops(tmp_path):
    sup = Supervisor(tmp_path / "logs", cwd=tmp_path)
    port = free_port()
    child = sup.start(
        "web",
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        ready=http_ready(f"http://127.0.0.1:{port}/"),
    )
    assert child.running() and not port_free(port)
    sup.stop_all()
    assert not child.running() and port_free(port)
    assert (tmp_path / "logs" / "web.log").exists()


def test_a_child_that_exits_reports_its_log(tmp_path):
    sup = Supervisor(tmp_path / "logs", cwd=tmp_path)
    with pytest.raises(StartError, match=r"(?s)exited with code 3.*bad config: line 7"):
        sup.start(
            "broken",
            [sys.executable, "-c", "print('bad config: line 7'); raise SystemExit(3)"],
            ready=tcp_ready("127.0.0.1", free_port()),
        )
    with pytest.raises(StartError, match="setup failed with exit code 1"):
        sup.run("setup", [sys.executable, "-c", "raise SystemExit(1)"])


def test_stop_takes_the_whole_group_and_kills_the_stubborn(tmp_path):
    sup = Supervisor(tmp_path / "logs", cwd=tmp_path)
    pidfile = tmp_path / "grandchild.pid"
    # A child that ignores SIGTERM and has a grandchild of its own (like gunicorn's workers).
    script = textwrap.dedent(f"""
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        worker = subprocess.Popen(["sleep", "300"])
        open({str(pidfile)!r}, "w").write(str(worker.pid))
        while True:
            time.sleep(1)
    """)
    child = sup.start("stubborn", [sys.executable, "-c", script], ready=pidfile.exists)
    wait_until(lambda: pidfile.read_text().strip(), message="the grandchild's pid")
    grandchild = int(pidfile.read_text())
    sup.stop_all(grace=1)
    assert gone(child.pid) and gone(grandchild)


def test_children_die_with_the_runner(tmp_path):
    """Should the runner be killed outright, its children get SIGTERM (no orphans left behind)."""
    pidfile = tmp_path / "child.pid"
    runner = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from demo.supervisor import Supervisor
        sup = Supervisor(Path({str(tmp_path)!r}) / "logs")
        child = sup.start("sleeper", ["sleep", "300"])
        Path({str(pidfile)!r}).write_text(str(child.pid))
        time.sleep(300)
    """)
    proc = spawn(
        [sys.executable, "-c", runner],
        death_signal=signal.SIGKILL,
        cwd=os.getcwd(),
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        wait_until(lambda: pidfile.exists() and pidfile.read_text(), message="the child's pid")
        child = int(pidfile.read_text())
        assert not gone(child)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        wait_until(lambda: gone(child), timeout=10, message="the orphan to stop")
    finally:
        proc.kill()
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
