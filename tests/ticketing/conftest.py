"""Fixtures for the ticket service, layered as in Flask's tutorial.

``app`` is a testing app on a fresh database, once on SQLite and once on
PostgreSQL (through the shared ``db_url`` fixture), with its schema made by the
Alembic migrations (``flask_migrate.upgrade``), never ``create_all``.
``client`` and ``runner`` are its test client and CLI runner. ``make`` creates
partners, staff, keys and tickets:

    def test_something(client, make):
        acme = make.partner("Acme")                  # Party(id, key, headers)
        ticket = make.ticket(acme, title="Invoice missing")
        client.get(f"/api/v1/tickets/{ticket['id']}", headers=acme.headers)
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import pytest
from flask_migrate import upgrade

from ticketing import create_app
from ticketing.auth import issue_key
from ticketing.db import db
from ticketing.models import Partner, Staff


@dataclass
class Party:
    """A partner or staff member with an API key."""

    kind: str
    id: int
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}


def ticketing_config(db_url: str, tmp_path, **extra: Any) -> dict[str, Any]:
    return {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": db_url,
        "ATTACHMENTS_DIR": str(tmp_path / "attachments"),
        "TICKETING": {
            # Small enough that oversize uploads are quick to send.
            "attachments": {"max_bytes": 256 * 1024},
            # These tests file tickets faster than partners may (tests/security covers limits).
            "ratelimits": {"enabled": False},
        },
        **extra,
    }


@pytest.fixture
def app_config(db_url, tmp_path) -> dict[str, Any]:
    """The config the ``app`` fixture uses; a test module may override this fixture."""
    return ticketing_config(db_url, tmp_path)


def migrated_app(config: dict[str, Any]):
    """A testing app on a database migrated to the latest revision; disposed after."""
    app = create_app(config)
    with app.app_context():
        upgrade()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def app(app_config):
    yield from migrated_app(app_config)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class Maker:
    """Creates rows directly, and tickets through the API."""

    def __init__(self, app, client):
        self.app = app
        self.client = client
        self._staff = 0

    def partner(self, name: str = "Acme Energy", status: str = "active") -> Party:
        with self.app.app_context():
            partner = Partner(name=name, status=status)
            db.session.add(partner)
            db.session.flush()
            _, raw = issue_key(partner=partner, name="test")
            db.session.commit()
            return Party("partner", partner.id, raw)

    def staff(self, role: str = "agent", name: str | None = None) -> Party:
        self._staff += 1
        with self.app.app_context():
            member = Staff(
                name=name or f"{role} {self._staff}",
                email=f"{role}{self._staff}@support.example",
                role=role,
            )
            db.session.add(member)
            db.session.flush()
            _, raw = issue_key(staff=member, name="test")
            db.session.commit()
            return Party("staff", member.id, raw)

    def ticket(
        self,
        partner: Party,
        title: str = "Question about our account",
        description: str = "Please have a look.",
        **fields: Any,
    ) -> dict:
        response = self.client.post(
            "/api/v1/tickets",
            headers=partner.headers,
            json={"title": title, "description": description, **fields},
        )
        assert response.status_code == 201, response.json
        return response.json

    def upload(
        self,
        party: Party,
        ticket_id: int,
        content: bytes = b"log line\n",
        filename: str = "log.txt",
        content_type: str = "text/plain",
        staff: bool = False,
        **form: str,
    ):
        prefix = "/api/v1/staff" if staff else "/api/v1"
        return self.client.post(
            f"{prefix}/tickets/{ticket_id}/attachments",
            headers=party.headers,
            data={"file": (io.BytesIO(content), filename, content_type), **form},
            content_type="multipart/form-data",
        )


@pytest.fixture
def make(app, client) -> Maker:
    return Maker(app, client)


#: The ticket service's own tables (security events and outbox rows are the
#: extensions' business: a refused request may well record one).
CORE_TABLES = (
    "partners",
    "staff",
    "api_keys",
    "tickets",
    "messages",
    "attachments",
    "ticket_audit",
    "idempotency_keys",
)


def row_counts(app) -> dict[str, int]:
    """Rows in each core table, to show that a refused request wrote nothing."""
    with app.app_context():
        counts = {}
        for name in CORE_TABLES:
            table = db.metadata.tables[name]
            counts[name] = db.session.execute(
                db.select(db.func.count()).select_from(table)
            ).scalar_one()
        db.session.rollback()
        return counts


def assert_error(response, status: int, code: str | None = None) -> dict:
    """``response`` is a JSON error of the stable shape; returns its ``error`` object."""
    assert response.status_code == status, (response.status_code, response.get_data(True))
    assert response.mimetype == "application/json", response.get_data(True)
    body = response.get_json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    assert isinstance(error["details"], dict)
    if code is not None:
        assert error["code"] == code, error
    return error
