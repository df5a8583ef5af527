"""Fixtures for the status page tests: ticketing apps with the status page and webhooks.

``make_app(alertmanager_url=None, **status)`` builds a migrated app on the test's
database (SQLite then PostgreSQL) with the receiver's token, webhooks towards the
loopback sink, the outbox towards ``alertmanager_url`` and the page's cache off, so
a change shows on the next request.
"""

from __future__ import annotations

import pytest
from flask import Flask

from tests.harness.app import create_test_app, ticketing_config
from tests.harness.outbox import FAST_OUTBOX
from tests.harness.webhooks import FAST_WEBHOOKS, TOKEN
from ticketing.db import db


@pytest.fixture
def make_app(db_url, tmp_path):
    token_file = tmp_path / "receiver_token"
    token_file.write_text(TOKEN + "\n")
    built: list[Flask] = []

    def make(alertmanager_url: str | None = None, **status) -> Flask:
        section = {"cache_ttl": 0, **status}
        webhooks = {**FAST_WEBHOOKS, "receiver_token_file": str(token_file)}
        app = create_test_app(
            ticketing_config(
                db_url,
                tmp_path,
                ticketing={
                    "outbox": {
                        **FAST_OUTBOX,
                        "worker": False,
                        **({"alertmanager_url": alertmanager_url} if alertmanager_url else {}),
                    },
                    "webhooks": webhooks,
                    "status": section,
                    "ratelimits": {"enabled": False},
                },
            ),
            migrate=not built,
        )
        built.append(app)
        return app

    yield make
    for app in built:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """``browser(width, height)`` opens a headless Chromium session (Debian's chromium and
    chromedriver, tied to the run like the console's browser tests); all closed after."""
    from pathlib import Path

    from tests.harness.console import CHROMEDRIVER, CHROMIUM, open_chromium, tied_chromium

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Debian's chromium and chromium-driver are needed (./dev deps installs them)")
    chromium = tied_chromium(tmp_path_factory.mktemp("chromium"))
    opened = []

    def open_session(width: int = 1280, height: int = 900):
        opened.append(open_chromium(chromium, width, height, "--hide-scrollbars"))
        return opened[-1]

    yield open_session
    for driver in opened:
        try:
            driver.quit()
        except Exception:  # the browser may be gone already; teardown goes on
            pass
