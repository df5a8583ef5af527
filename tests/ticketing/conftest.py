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

from typing import Any

import pytest

from tests.harness.app import migrated_app, ticketing_config
from tests.harness.seed import Maker


@pytest.fixture
def app_config(db_url, tmp_path) -> dict[str, Any]:
    """The config the ``app`` fixture uses; a test module may override this fixture."""
    return ticketing_config(db_url, tmp_path)


@pytest.fixture
def app(app_config):
    yield from migrated_app(app_config)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make(app, client) -> Maker:
    return Maker(app, client)
