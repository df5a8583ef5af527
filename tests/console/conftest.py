"""Fixtures for the support console.

Module-scoped, for the browser tests (starting them is the slow part):

- ``console_server``: on SQLite, then on PostgreSQL, the ticket service under real gunicorn (2 workers, the
  shipped gunicorn.conf.py) on a migrated database with a partner, an admin
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

import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from sqlalchemy import create_engine, select, update

from tests.harness import ManagedProcess, free_port, http_ready
from tests.ticketing.conftest import Maker, Party, migrated_app, ticketing_config
from ticketing import database_url
from ticketing.models import Ticket

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
POLL = 0.5  # console.poll_interval of the browser tests' server, seconds


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


def csrf_token(client, path: str = "/console/login") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text[:500]
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def signed_in(client, party: Party):
    """Sign ``client`` in with ``party``'s key through the sign-in form; returns a CSRF token."""
    response = client.post(
        "/console/login", data={"api_key": party.key, "csrf_token": csrf_token(client)}
    )
    assert response.status_code == 303, response.text[:500]
    return csrf_token(client, "/console/")


# ------------------------------------------------------------------ a real server


@dataclass
class ConsoleServer:
    url: str
    db_url: str
    keys: dict[str, str]
    ids: dict[str, int]
    process: ManagedProcess
    _engine: Any = field(default=None, repr=False)

    def partner_api(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(
            method,
            self.url + "/api/v1" + path,
            headers={"X-API-Key": self.keys["partner"]},
            timeout=10,
            **kwargs,
        )

    def age_ticket(self, ticket_id: int, by: timedelta) -> None:
        """Make a ticket look filed ``by`` earlier: its times and SLA due times move back."""
        if self._engine is None:
            self._engine = create_engine(database_url(self.db_url))
        table = Ticket.__table__
        columns = ("created_at", "updated_at", "first_response_due_at", "resolution_due_at")
        with self._engine.begin() as connection:
            row = connection.execute(
                select(*(table.c[c] for c in columns)).where(table.c.id == ticket_id)
            ).one()
            connection.execute(
                update(table)
                .where(table.c.id == ticket_id)
                .values({c: value - by for c, value in zip(columns, row)})
            )


def _prepare_database(db_url: str, tmp: Path) -> tuple[dict[str, str], dict[str, int]]:
    """Migrate and add a partner, an admin and an agent with keys (as a deployment would)."""
    generator = migrated_app(ticketing_config(db_url, tmp))
    app = next(generator)
    maker = Maker(app, app.test_client())
    partner = maker.partner("Acme Energy")
    admin = maker.staff("admin", name="Alex Admin")
    agent = maker.staff("agent", name="Sam Agent")
    other = maker.partner("Borealis Power")
    next(generator, None)
    keys = {"partner": partner.key, "admin": admin.key, "agent": agent.key, "other": other.key}
    ids = {"partner": partner.id, "admin": admin.id, "agent": agent.id, "other": other.id}
    return keys, ids


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def console_server(request, tmp_path_factory, redis_server, root):
    """The service under gunicorn, once on SQLite (the default) and once on PostgreSQL."""
    tmp = tmp_path_factory.mktemp("console-server")
    if request.param == "sqlite":
        db_url = f"sqlite:///{tmp / 'ticketing.db'}"
    else:
        db_url = request.getfixturevalue("postgres_server").create_database()
    keys, ids = _prepare_database(db_url, tmp)
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
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Debian's chromium and chromium-driver are needed (./dev deps installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opened = []

    def open_session(width: int = 1280, height: int = 800):
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--window-size={width},{height}",
            "--disable-extensions",
            "--no-first-run",
            "--lang=en-US",
        ):
            options.add_argument(argument)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        driver.set_page_load_timeout(30)
        # --window-size is the window's; make the page's viewport that size.
        inner = driver.execute_script("return [window.innerWidth, window.innerHeight];")
        driver.set_window_size(2 * width - inner[0], 2 * height - inner[1])
        opened.append(driver)
        return driver

    yield open_session
    for driver in opened:
        driver.quit()


def keep_in_docs(shot: Path, name: str, root: Path) -> None:
    """Copy a screenshot into docs/ when asked to (``CONSOLE_SCREENSHOTS=docs``)."""
    if os.environ.get("CONSOLE_SCREENSHOTS") == "docs":
        shutil.copyfile(shot, root / "docs" / name)
