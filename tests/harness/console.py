"""The support console: its browser, sign-in through the form, a gunicorn server of it."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, select, update

from demo.supervisor import die_with_parent, spawn
from tests.harness import ManagedProcess
from tests.harness.app import migrated_app, ticketing_config
from tests.harness.seed import Maker, Party
from ticketing import database_url
from ticketing.models import Ticket

CHROMIUM = "/usr/bin/chromium"


CHROMEDRIVER = "/usr/bin/chromedriver"


POLL = 0.5  # console.poll_interval of the browser tests' server, seconds


def sign_in(driver: Any, url: str, key: str) -> None:
    """Sign a browser in to the console at ``url`` with an API key, by keyboard only."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.get(url + "/console/login")
    field = driver.find_element(By.ID, "api_key")
    field.send_keys(key)
    field.send_keys(Keys.ENTER)


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
                .values({c: value - by for c, value in zip(columns, row, strict=True)})
            )


def prepare_console_database(db_url: str, tmp: Path) -> tuple[dict[str, str], dict[str, int]]:
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


def keep_in_docs(shot: Path, name: str, root: Path) -> None:
    """Copy a screenshot into docs/ when asked to (``CONSOLE_SCREENSHOTS=docs``)."""
    if os.environ.get("CONSOLE_SCREENSHOTS") == "docs":
        shutil.copyfile(shot, root / "docs" / name)


# ------------------------------------------------------------------ a browser tied to the run


def tied_chromium(directory: Path) -> Path:
    """An executable that runs Debian's chromium so that it dies with this process.

    chromedriver starts the browser; when the test run is killed, chromedriver
    is (see :class:`TiedChromeService`), and this wrapper makes the kernel kill
    the browser too (``setpriv --pdeathsig``; the browser's own helper
    processes leave with it).
    """
    wrapper = Path(directory) / "chromium"
    command = " ".join(shlex.quote(part) for part in die_with_parent([CHROMIUM], signal.SIGKILL))
    wrapper.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def chrome_service():
    """A chromedriver service started through the harness's launcher (dies with the run)."""
    from selenium.webdriver.chrome.service import Service

    class TiedChromeService(Service):
        def _start_process(self, path: str) -> None:
            self.process = spawn(
                [path, *self.command_line_args()],
                death_signal=signal.SIGKILL,
                env=self.env,
                stdout=self.log_output,
                stderr=self.log_output,
                stdin=subprocess.PIPE,
                **self.popen_kw,
            )

    return TiedChromeService(CHROMEDRIVER)


def open_chromium(chromium: Path, width: int, height: int, *extra_args: str) -> Any:
    """A headless Selenium session of Debian's ``chromium`` whose page viewport (not
    only its window) is ``width`` x ``height``."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--disable-extensions",
        "--no-first-run",
        "--lang=en-US",
        *extra_args,
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=chrome_service(), options=options)
    driver.set_page_load_timeout(30)
    # --window-size is the window's; make the page's viewport that size.
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight];")
    driver.set_window_size(2 * width - inner[0], 2 * height - inner[1])
    return driver
