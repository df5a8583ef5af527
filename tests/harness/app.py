"""The ticket service's Flask app for tests: one factory, as in Flask's tutorial.

:func:`ticketing_config` is the testing config (a database URL, attachments in
the test's directory, rate limits off unless asked for); :func:`create_test_app`
builds the app with it (or any config dict), migrated by Alembic
(``flask_migrate.upgrade``, never ``create_all``) unless ``migrate=False``;
:func:`migrated_app` is the same as a generator for fixtures, disposing the
app's database connections afterwards:

    app = create_test_app(ticketing_config(db_url, tmp_path))
    ...
    dispose(app)

    @pytest.fixture
    def app(app_config):
        yield from migrated_app(app_config)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Flask


def ticketing_config(
    db_url: str, tmp_path: Path | None = None, *, ticketing: dict | None = None, **extra: Any
) -> dict[str, Any]:
    """The testing config on ``db_url``; ``ticketing`` replaces the TICKETING section.

    Without ``ticketing`` the section has small attachments and no rate limits
    (the ticket service tests file tickets faster than partners may; tests/security
    covers limits).
    """
    config: dict[str, Any] = {"TESTING": True, "SQLALCHEMY_DATABASE_URI": db_url}
    if tmp_path is not None:
        config["ATTACHMENTS_DIR"] = str(Path(tmp_path) / "attachments")
    if ticketing is None:
        ticketing = {
            # Small enough that oversize uploads are quick to send.
            "attachments": {"max_bytes": 256 * 1024},
            "ratelimits": {"enabled": False},
        }
    config["TICKETING"] = ticketing
    return {**config, **extra}


def create_test_app(config: dict[str, Any], *, migrate: bool = True) -> Flask:
    """``ticketing.create_app(config)``, its database migrated to the latest revision."""
    from flask_migrate import upgrade

    from ticketing import create_app

    app = create_app(config)
    if migrate:
        with app.app_context():
            upgrade()
    return app


def dispose(app: Flask) -> None:
    """Close the app's database session and connections (SQLite files, PostgreSQL sessions)."""
    from ticketing.db import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def migrated_app(config: dict[str, Any]) -> Iterator[Flask]:
    """A testing app on a migrated database, for ``yield from`` in a fixture; disposed after."""
    app = create_test_app(config)
    yield app
    dispose(app)
