"""Shared fixtures: real services on loopback ports, always stopped afterwards.

Session-wide (started once, shared): ``redis_server``, ``postgres_server``.
Per test: ``db_url`` (a fresh SQLite file or PostgreSQL database; parametrize
with ``@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)``),
``postgres_url``, ``prometheus_factory``, ``alertmanager_factory``,
``redis_factory`` (a private Redis a test may kill), ``smtp_sink``, ``http_sink``,
and ``processes`` (start any command, stopped at teardown).

Parallel runs (``-n auto`` in setup.cfg) use one worker more than the machine
has cores: about 40 % of the suite's test time is spent waiting on real
processes (Prometheus evaluating, Alertmanager's group waits, the demo's calm
minutes), and the extra worker runs tests in those gaps.
``PYTEST_XDIST_AUTO_NUM_WORKERS=N`` sets the number instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.harness import (
    HTTPSink,
    ManagedProcess,
    ProcessGroup,
    SMTPSink,
    start_alertmanager,
    start_postgres,
    start_prometheus,
    start_redis,
)

ROOT = Path(__file__).resolve().parent.parent


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Workers for ``-n auto``: the environment's number, else the usable cores plus one."""
    chosen = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "").strip()
    if chosen.isdigit() and int(chosen) > 0:
        return int(chosen)
    return len(os.sched_getaffinity(0)) + 1


@pytest.fixture(scope="session")
def root() -> Path:
    """The repository root (configs under prometheus/, rules/, alertmanager/, ...)."""
    return ROOT


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_factory(tmp_path):
    started = []

    def make(port: int | None = None):
        server = start_redis(tmp_path, port=port)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def redis_url(redis_server):
    """A Redis URL on the shared server, flushed before the test."""
    redis_server.client().flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def postgres_server():
    server = start_postgres()
    yield server
    server.cleanup()


@pytest.fixture
def postgres_url(postgres_server):
    """SQLAlchemy URL of a fresh, empty PostgreSQL database."""
    return postgres_server.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("postgres_server").create_database()


@pytest.fixture
def processes():
    """Start commands that are stopped at teardown: ``processes.start(cmd, cwd, ready=...)``."""
    group = ProcessGroup()

    class Starter:
        def start(self, cmd, workdir, ready=None, name=None, env=None, timeout=30.0):
            proc = group.add(ManagedProcess(cmd, workdir, name=name, env=env))
            proc.start(ready=ready, timeout=timeout)
            return proc

        python = sys.executable

    yield Starter()
    group.stop_all()


@pytest.fixture
def prometheus_factory(tmp_path):
    started = []

    def make(*args, **kwargs):
        server = start_prometheus(tmp_path, *args, **kwargs)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def alertmanager_factory(tmp_path):
    started = []

    def make(*args, **kwargs):
        server = start_alertmanager(tmp_path, *args, **kwargs)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def smtp_sink():
    with SMTPSink() as sink:
        yield sink


@pytest.fixture
def http_sink():
    with HTTPSink() as sink:
        yield sink
