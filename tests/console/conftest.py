"""Fixtures for the support console.

Module-scoped, for the browser tests (starting them is the slow part):

- ``console_server``: on SQLite, then on PostgreSQL, the ticket service under real
  gunicorn (2 workers, the shipped gunicorn.conf.py) on a migrated database with a partner, an admin
  and an agent, rate limits in the shared Redis; ``.url``, ``.keys``,
  ``.partner_api(method, path, **kw)``, ``.sql(statement, **params)``;
- ``browser``: ``browser()`` opens a new headless Chromium session (Debian's
  ``chromium`` through Debian's ``chromedriver``: their versions match by
  construction), each with its own cookies; all are closed at teardown;
- ``screenshots``: the directory the run writes screenshots to (pytest's tmp).

Per test, for the Flask test client tests: ``console_app`` (on SQLite and on
PostgreSQL), ``signed_in(client, party)`` and ``csrf_token(client, path)``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import ManagedProcess, free_port, http_ready
from tests.harness.app import migrated_app, ticketing_config
from tests.harness.console import (
    CHROMEDRIVER,
    CHROMIUM,
    POLL,
    ConsoleServer,
    open_chromium,
    prepare_console_database,
    tied_chromium,
)
from tests.harness.seed import Maker

# ------------------------------------------------------------------ Flask test client


@pytest.fixture
def app_config(db_url, tmp_path) -> dict[str, Any]:
    config = ticketing_config(db_url, tmp_path)
    config["TICKETING"]["console"] = {"page_size": 3}
    return config


@pytest.fixture
def console_app(app_config):
    yield from migrated_app(app_config)


@pytest.fixture
def client(console_app):
    return console_app.test_client()


@pytest.fixture
def make(console_app, client) -> Maker:
    return Maker(console_app, client)


# ------------------------------------------------------------------ a real server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def console_server(request, tmp_path_factory, redis_server, root):
    """The service under gunicorn, once on SQLite (the default) and once on PostgreSQL."""
    tmp = tmp_path_factory.mktemp("console-server")
    if request.param == "sqlite":
        db_url = f"sqlite:///{tmp / 'ticketing.db'}"
    else:
        db_url = request.getfixturevalue("postgres_server").create_database()
    keys, ids = prepare_console_database(db_url, tmp)
    config = tmp / "ticketing.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "console": {"poll_interval": POLL, "stale_after": 2},
                "outbox": {"worker": False},
                "live": {"enabled": False},
                # The tests sign in often from one address; failures are what counts (5/minute).
                "ratelimits": {"limits": {"api_call": "1000/minute"}},
            }
        )
    )
    redis_server.client().flushall()
    port = free_port()
    (tmp / "metrics").mkdir()
    env = {
        "TICKETING_DATABASE_URL": db_url,
        "TICKETING_CONFIG": str(config),
        "TICKETING_SECRET_KEY": "console-tests-" + "x" * 32,
        "REDIS_URL": redis_server.url,
        "TICKETING_ATTACHMENTS_DIR": str(tmp / "attachments"),
        "TICKETING_WORKERS": "2",
        "TICKETING_THREADS": "8",
        "TICKETING_BIND": f"127.0.0.1:{port}",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
        "PYTHONPATH": str(root),
    }
    process = ManagedProcess(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            str(root / "ticketing" / "runtime" / "gunicorn.conf.py"),
            "--no-control-socket",
            "--chdir",
            str(root),
            "ticketing:create_app()",
        ],
        tmp,
        name="gunicorn-console",
        env=env,
    )
    process.start(ready=http_ready(f"http://127.0.0.1:{port}/readyz"), timeout=60)
    server = ConsoleServer(f"http://127.0.0.1:{port}", db_url, keys, ids, process)
    yield server
    process.stop()
    if server._engine is not None:
        server._engine.dispose()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Debian's chromium and chromium-driver are needed (./dev deps installs them)")
    chromium = tied_chromium(tmp_path_factory.mktemp("chromium"))
    opened = []

    def open_session(width: int = 1280, height: int = 800):
        opened.append(open_chromium(chromium, width, height))
        return opened[-1]

    yield open_session
    for driver in opened:
        driver.quit()
