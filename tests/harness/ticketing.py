"""The ticket service as N gunicorn instances on one database and one Redis.

:func:`prepare_database` migrates a database and issues API keys (partners and
one staff member); :func:`start_ticketing` runs one gunicorn with
``ticketing/runtime/gunicorn.conf.py`` (its own metrics directory, as each host of a
deployment has), ready when ``/readyz`` answers:

    keys = prepare_database(db_url, partners=2)
    instances = [start_ticketing(tmp, env={"TICKETING_DATABASE_URL": db_url,
                                           "REDIS_URL": redis_url}, workers=2)
                 for _ in range(2)]
    instances[0].metric("notifications_delivered_total", kind="ticket_created")
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.harness.app import create_test_app, dispose, ticketing_config
from tests.harness.processes import ManagedProcess, free_port, http_ready
from tests.harness.seed import KeySet, issue_keys
from tests.harness.services import OnLoopback

ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = ROOT / "ticketing" / "runtime" / "gunicorn.conf.py"


def prepare_database(url: str, partners: int = 1) -> KeySet:
    """Migrate ``url`` and create ``partners`` partners and one staff member, each with a key."""
    app = create_test_app(
        ticketing_config(url, ticketing={"outbox": {"worker": False}, "live": {"enabled": False}})
    )
    keys = issue_keys(app, partners)
    dispose(app)
    return keys


@dataclass
class TicketingInstance(OnLoopback):
    process: ManagedProcess
    port: int
    host: str = "127.0.0.1"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws/monitoring"

    def worker_pids(self) -> list[int]:
        """The gunicorn workers (children of the master) now."""
        if not self.process.running():
            return []
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(p) for p in children.read_text().split()]
        except OSError:
            return []

    def stop(self) -> None:
        """gunicorn's quick shutdown (SIGINT): the graceful one waits out keep-alive clients."""
        if self.process.running():
            self.process.signal(signal.SIGINT)
            try:
                self.process.popen.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()


def start_ticketing(
    workdir: Path,
    *,
    env: dict[str, str],
    workers: int = 2,
    threads: int | None = None,
    port: int | None = None,
    name: str | None = None,
    wait: bool = True,
    timeout: float = 90.0,
) -> TicketingInstance:
    """One gunicorn instance of the ticket service (``env`` names the database, Redis, ...).

    With ``wait=False`` it returns at once, without waiting for ``/readyz``.
    """
    port = port or free_port()
    name = name or f"ticketing-{port}"
    workdir = Path(workdir) / name
    metrics = workdir / "metrics"
    metrics.mkdir(parents=True, exist_ok=True)
    full_env = {
        "TICKETING_BIND": f"127.0.0.1:{port}",
        "TICKETING_WORKERS": str(workers),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        "PYTHONPATH": str(ROOT),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        **({"TICKETING_THREADS": str(threads)} if threads else {}),
        **env,
    }
    proc = ManagedProcess(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(GUNICORN_CONF),
            "--no-control-socket",
            "ticketing:create_app()",
        ],
        workdir,
        name=name,
        env=full_env,
    )
    proc.start(
        ready=http_ready(f"http://127.0.0.1:{port}/readyz") if wait else None, timeout=timeout
    )
    return TicketingInstance(proc, port)
