"""Fixtures for the notification outbox tests: ticketing apps, keys, a webhook Alertmanager.

``make_app(alertmanager_url)`` builds a migrated ticketing app (``TESTING``: no
background worker; tests deliver with ``deliver(app)``) on the test's database;
every app built in one test shares that database, the way a restarted process
would. ``seed(app)`` creates a partner and an agent with their API keys.
``webhook_alertmanager(http_sink)`` is a real Alertmanager whose only receiver
posts to ``http_sink`` at ``/hook``, one group per ticket.
"""

from __future__ import annotations

import pytest
from flask import Flask

from tests.harness.app import create_test_app, ticketing_config
from tests.harness.outbox import FAST_OUTBOX, nowhere, webhook_config
from ticketing.db import db


@pytest.fixture
def make_app(db_url, tmp_path):
    built: list[Flask] = []

    def make(alertmanager_url: str | None = None, testing: bool = True, **outbox) -> Flask:
        section = {**FAST_OUTBOX, "alertmanager_url": alertmanager_url or nowhere(), **outbox}
        config = ticketing_config(db_url, tmp_path, ticketing={"outbox": section})
        app = create_test_app({**config, "TESTING": testing}, migrate=not built)
        built.append(app)
        return app

    make.db_url = db_url
    yield make
    for app in built:
        app.extensions["outbox"].worker.stop()
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def webhook_alertmanager(alertmanager_factory, http_sink):
    return alertmanager_factory(webhook_config(http_sink.url + "/hook"))
