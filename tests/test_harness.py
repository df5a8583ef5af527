"""The harness itself: every service starts, answers, stops and restarts."""

import json
import os
import shutil
import signal
import smtplib
import sys
from email.message import EmailMessage
from pathlib import Path

import requests

from tests.harness import ManagedProcess, wait_until


def test_redis_restarts_on_same_port(redis_factory):
    server = redis_factory()
    client = server.client()
    assert client.ping()
    server.kill()
    server.start()
    assert server.client().ping()


def test_postgres_fresh_databases(postgres_server):
    import psycopg

    url = postgres_server.create_database()
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(postgres_server.dsn(name)) as conn:
        assert conn.execute("select current_database()").fetchone()[0] == name


def test_prometheus_scrapes_itself(prometheus_factory):
    from tests.harness import free_port

    port = free_port()
    prom = prometheus_factory(
        [{"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
        port=port,
    )
    prom.wait_for_value('up{job="prometheus"}', 1)


def test_alertmanager_webhook_reaches_http_sink(alertmanager_factory, http_sink):
    am = alertmanager_factory(
        {
            "route": {"receiver": "hook", "group_wait": "0s", "group_by": ["alertname"]},
            "receivers": [{"name": "hook", "webhook_configs": [{"url": http_sink.url + "/hook"}]}],
        }
    )
    am.post_alerts([{"labels": {"alertname": "HarnessCheck"}}])
    [request] = http_sink.wait_for(1, path="/hook", timeout=30)
    assert request.json["alerts"][0]["labels"]["alertname"] == "HarnessCheck"
    assert am.alerts(alertname="HarnessCheck")


def test_smtp_sink_keeps_messages(smtp_sink):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.org", "b@example.org", "hello"
    msg.set_content("body text")
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port) as client:
        client.send_message(msg)
    [mail] = smtp_sink.wait_for(1, timeout=10)
    assert mail.subject == "hello" and "body text" in mail.text()


def test_http_sink_answers_configured_status(http_sink):
    http_sink.status = 503
    assert requests.post(http_sink.url + "/x", json={"a": 1}).status_code == 503
    assert http_sink.received("/x")[0].json == {"a": 1}


# ------------------------------------------------------------- nothing outlives the run

#: A test run of its own: it starts harness processes, records their pids and waits
#: to be killed.
KILLED_RUN = """
import json, os, sys, threading, time
from pathlib import Path

from tests.harness import ManagedProcess, start_postgres, start_redis

OUT = Path(os.environ["HARNESS_KILL_OUT"])


def children(pid):
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_started_then_killed(tmp_path):
    redis = start_redis(tmp_path)
    postgres = start_postgres()
    sleeper = ManagedProcess(["sleep", "300"], tmp_path, name="sleeper").start()
    # Started from a thread that ends at once: still tied to the run, not to that thread.
    from_thread = []
    thread = threading.Thread(
        target=lambda: from_thread.append(
            ManagedProcess(["sleep", "301"], tmp_path, name="threaded").start()
        )
    )
    thread.start()
    thread.join()
    time.sleep(0.5)
    assert from_thread[0].running(), "killed when the thread that started it ended"
    pids = {
        "redis": redis.process.pid,
        "postgres": postgres.process.pid,
        "sleeper": sleeper.pid,
        "threaded": from_thread[0].pid,
    }
    for n, pid in enumerate(children(postgres.process.pid)):
        pids[f"postgres-child-{n}"] = pid
    OUT.write_text(json.dumps({"pids": pids, "pg_base": str(postgres.datadir.parent)}))
    time.sleep(600)
"""


def _gone(pid: int) -> bool:
    """No such process, or only a zombie (its new parent may not reap it at once)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_a_killed_test_run_leaves_no_process_behind(tmp_path, root):
    """SIGKILL a pytest that started Redis, PostgreSQL and plain programs: all of them die."""
    (tmp_path / "test_killed_run.py").write_text(KILLED_RUN)
    out = tmp_path / "pids.json"
    run = ManagedProcess(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "--rootdir",
            str(tmp_path),
            str(tmp_path / "test_killed_run.py"),
        ],
        tmp_path,
        name="killed-run",
        env={"PYTHONPATH": str(root), "HARNESS_KILL_OUT": str(out)},
    )
    pids: dict[str, int] = {}
    try:
        run.start(ready=out.exists, timeout=120)
        recorded = json.loads(out.read_text())
        pids = recorded["pids"]
        assert {"redis", "postgres", "sleeper", "threaded"} <= set(pids), pids
        assert any(name.startswith("postgres-child") for name in pids), pids
        assert not [name for name, pid in pids.items() if _gone(pid)], pids

        os.kill(run.pid, signal.SIGKILL)  # the test run only, not its process group
        run.popen.wait(10)

        def left() -> list[str]:
            return [name for name, pid in pids.items() if not _gone(pid)]

        try:
            wait_until(lambda: not left(), timeout=10, message="the run's processes to die")
        except TimeoutError:
            raise AssertionError(f"still running after the test run was killed: {left()}") from None
        shutil.rmtree(recorded["pg_base"], ignore_errors=True)
    finally:
        run.stop()
        for pid in pids.values():  # safety net should the assertion fail
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)


def test_auto_workers_are_the_cores_plus_one_unless_the_environment_says(monkeypatch, request):
    from tests.conftest import pytest_xdist_auto_num_workers

    cores = len(os.sched_getaffinity(0))
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    assert pytest_xdist_auto_num_workers(request.config) == cores + 1
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "5")
    assert pytest_xdist_auto_num_workers(request.config) == 5
    for ignored in ("", "0", "many", "-2"):
        monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", ignored)
        assert pytest_xdist_auto_num_workers(request.config) == cores + 1
