"""Fixtures for the security monitor.

Most tests use the small app of :mod:`tests.security.app_under_test` (the
monitor as any Flask app of the platform would use it); ``make_app`` builds
one on a fresh SQLite file, with settings per test:

    def test_x(make_app, redis_url):
        app = make_app(ratelimits={"limits": {"api_call": "3/minute"}}, redis_url=redis_url)
        client = app.test_client()

``events(app)`` returns the stored security events; ``counter(name, **labels)``
reads a counter of the process registry (tests compare before and after).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from ticketing.db import db
from ticketing.security import SecurityEvent

from .app_under_test import PARTNER_1, PARTNER_2, STAFF, build_app

CORPUS = Path(__file__).with_name("corpus")


def load_corpus(name: str) -> list[tuple[str, str]]:
    """(title, description) pairs of ``corpus/<name>``."""
    entries = []
    for block in (CORPUS / name).read_text().split("\n---\n"):
        block = block.strip("\n")
        if block:
            title, _, description = block.partition("\n")
            entries.append((title, description))
    return entries


def events(app, **filters: Any) -> list[SecurityEvent]:
    with app.app_context():
        query = db.select(SecurityEvent).order_by(SecurityEvent.id)
        for name, value in filters.items():
            query = query.where(getattr(SecurityEvent, name) == value)
        rows = list(db.session.execute(query).scalars())
        db.session.expunge_all()
        return rows


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


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


def key(which: str) -> dict[str, str]:
    return {"X-API-Key": {"partner1": PARTNER_1, "partner2": PARTNER_2, "staff": STAFF}[which]}
