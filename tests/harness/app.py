"""The ticket service's Flask app for tests: one factory, as in Flask's tutorial.

:func:`ticketing_config` is the testing config (a database URL, attachments in
the test's directory, rate limits off unless asked for); :func:`create_test_app`
builds the app with it (or any config dict), migrated by Alembic
(``flask_migrate.upgrade``, never ``create_all``) unless ``migrate=False``;
an empty database first becomes a copy of one this test process migrated
(:func:`copy_migrated`: the SQLite file copied, a PostgreSQL database cloned
from it as a template), so each test does not run every migration again and
the ``upgrade`` after the copy finds nothing to do;
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

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy.engine import make_url


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

    if migrate:
        copy_migrated(config["SQLALCHEMY_DATABASE_URI"])
    app = create_app(config)
    if migrate:
        with app.app_context():
            upgrade()
    return app


#: database kind (and server) -> the database this process migrated once, to copy
_MIGRATED: dict[str, str] = {}


def copy_migrated(db_url: str) -> None:
    """Make an empty database (a SQLite file not yet there, a PostgreSQL database without
    tables) a copy of one migrated to the latest revision in this process."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:" and not Path(url.database).exists():
            shutil.copyfile(_migrated("sqlite", _sqlite_template), url.database)
    elif url.get_backend_name() == "postgresql" and url.database and _pg_empty(url):
        server = url.set(database="postgres")
        key = f"postgresql:{url.host}:{url.port}"
        template = _migrated(key, lambda: _pg_template(server))
        if not _pg_has_database(server, template):  # another server since, on that port
            template = _MIGRATED[key] = _pg_template(server)
        _pg_execute(server, f'DROP DATABASE "{url.database}"')
        _pg_execute(server, f'CREATE DATABASE "{url.database}" TEMPLATE "{template}"')


def _migrated(key: str, make: Callable[[], str]) -> str:
    if key not in _MIGRATED:
        _MIGRATED[key] = make()
    return _MIGRATED[key]


def _migrate(db_url: str) -> None:
    app = create_test_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": db_url}, migrate=False)
    from flask_migrate import upgrade

    with app.app_context():
        upgrade()
    dispose(app)


def _sqlite_template() -> str:
    directory = tempfile.mkdtemp(prefix="partnerwatch-migrated-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    path = str(Path(directory) / "migrated.db")
    _migrate(f"sqlite:///{path}")
    return path


def _pg_template(server: Any) -> str:
    name = f"migrated_{os.getpid()}_{os.urandom(3).hex()}"
    _pg_execute(server, f'CREATE DATABASE "{name}"')
    _migrate(server.set(database=name).render_as_string(hide_password=False))
    return name


def _pg_connect(url: Any) -> Any:
    """A psycopg connection to the database of a SQLAlchemy URL (its driver name dropped)."""
    import psycopg

    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(dsn, autocommit=True)


def _pg_execute(url: Any, sql: str) -> None:
    with _pg_connect(url) as conn:
        conn.execute(sql)


def _pg_has_database(server: Any, name: str) -> bool:
    with _pg_connect(server) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def _pg_empty(url: Any) -> bool:
    with _pg_connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchone()
    return bool(row and row[0] == 0)


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
