"""Fixtures for the partner webhook tests: ticketing apps with webhooks towards a local sink.

``make_app(**webhooks)`` is like tests/delivery's ``make_app`` (a migrated app on the
test's database, SQLite then PostgreSQL) with a ``webhooks`` section that lets
the loopback sink through (``allowed_networks: [127.0.0.1/32]``, http allowed)
and short retry timings; pass ``allowed_networks=[]`` for the shipped guard.
``partners(app)`` creates two partners (A and B) with keys, and an agent.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from tests.harness.app import create_test_app, ticketing_config
from tests.harness.outbox import FAST_OUTBOX
from tests.harness.webhooks import FAST_WEBHOOKS, TOKEN
from ticketing.db import db


@pytest.fixture
def token_file(tmp_path) -> Path:
    path = tmp_path / "receiver_token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture
def make_app(db_url, tmp_path, token_file):
    built: list[Flask] = []

    def make(**webhooks) -> Flask:
        section = {**FAST_WEBHOOKS, "receiver_token_file": str(token_file), **webhooks}
        app = create_test_app(
            ticketing_config(
                db_url, tmp_path, ticketing={"outbox": FAST_OUTBOX, "webhooks": section}
            ),
            migrate=not built,
        )
        built.append(app)
        return app

    yield make
    for app in built:
        with app.app_context():
            db.engine.dispose()
