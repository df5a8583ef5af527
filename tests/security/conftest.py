"""Fixtures for the security monitor.

Most tests use the small app of :mod:`tests.harness.security_app` (the
monitor as any Flask app of the platform would use it); ``make_app`` builds
one on a fresh SQLite file, with settings per test:

    def test_x(make_app, redis_url):
        app = make_app(ratelimits={"limits": {"api_call": "3/minute"}}, redis_url=redis_url)
        client = app.test_client()

``events(app)`` returns the stored security events; ``counter(name, **labels)``
reads a counter of the process registry (tests compare before and after).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness.security_app import build_app
from ticketing.db import db


@pytest.fixture
def make_app(tmp_path):
    apps = []

    def make(db_url: str | None = None, **kwargs: Any):
        app = build_app(db_url or f"sqlite:///{tmp_path / f'app{len(apps)}.db'}", **kwargs)
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app):
    """The test app with default settings and in-memory rate limits."""
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()
