"""Fixtures for the partner webhook tests: ticketing apps with webhooks towards a local sink.

``make_app(**webhooks)`` is like tests/delivery's ``make_app`` (a migrated app on the
test's database, SQLite then PostgreSQL) with a ``webhooks`` section that lets
the loopback sink through (``allowed_networks: [127.0.0.1/32]``, http allowed)
and short retry timings; pass ``allowed_networks=[]`` for the shipped guard.
``partners(app)`` creates two partners (A and B) with keys, and an agent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask_migrate import upgrade

from tests.delivery.conftest import FAST_OUTBOX, deliver
from ticketing import create_app
from ticketing.db import db

TOKEN = "receiver-token-0123456789abcdef"
FAST_WEBHOOKS = {
    "require_https": False,
    "allowed_networks": ["127.0.0.1/32"],
    "initial_backoff": "100ms",
    "max_backoff": "200ms",
    "connect_timeout": "1s",
    "read_timeout": "2s",
}


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
        app = create_app(
            {
                "TESTING": True,
                "SQLALCHEMY_DATABASE_URI": db_url,
                "ATTACHMENTS_DIR": str(tmp_path / "attachments"),
                "TICKETING": {"outbox": FAST_OUTBOX, "webhooks": section},
            }
        )
        if not built:
            with app.app_context():
                upgrade()
        built.append(app)
        return app

    yield make
    for app in built:
        with app.app_context():
            db.engine.dispose()


@dataclass
class Partners:
    a_id: int
    a: str
    b_id: int
    b: str
    staff_id: int
    staff: str


def partners(app: Flask) -> Partners:
    from ticketing.auth import issue_key
    from ticketing.models import Partner, Staff

    with app.app_context():
        a, b = Partner(name="Acme Energy"), Partner(name="Globex")
        staff = Staff(name="Sam", email=f"sam-{os.urandom(3).hex()}@example.org", role="agent")
        db.session.add_all([a, b, staff])
        db.session.flush()
        _, a_key = issue_key(partner=a)
        _, b_key = issue_key(partner=b)
        _, staff_key = issue_key(staff=staff)
        db.session.commit()
        return Partners(a.id, a_key, b.id, b_key, staff.id, staff_key)


def register(app: Flask, key: str, url: str, **fields) -> dict:
    response = app.test_client().post(
        "/api/v1/webhooks", json={"url": url, **fields}, headers={"X-API-Key": key}
    )
    assert response.status_code == 201, response.json
    return response.json


def deliver_until(app: Flask, sink, count: int, path: str | None = None, timeout: float = 15):
    """Run delivery passes until ``sink`` got ``count`` requests (retries wait their backoff)."""
    import time

    deadline = time.monotonic() + timeout
    while len(sink.received(path)) < count:
        assert time.monotonic() < deadline, f"{len(sink.received(path))} of {count} requests"
        deliver(app)
        time.sleep(0.05)
    return sink.received(path)
