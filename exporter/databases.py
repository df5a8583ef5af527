"""SQLAlchemy engines for the configured databases, and connections bounded in time.

Every query the exporter runs goes through :meth:`Database.connect`, which
asks the database itself to give up after the collector's timeout:

- PostgreSQL: ``SET LOCAL statement_timeout`` (covers lock waits too) for
  the transaction the run uses; ``connect_timeout`` for unreachable servers;
- SQLite: a progress handler that interrupts a statement running past the
  deadline, and ``PRAGMA busy_timeout`` so waiting on a lock ends as well;
- other databases: no database-side limit; the scheduler's thread deadline
  still frees the collector's schedule.

Connections are only read from and always rolled back. Pools are small (the
exporter runs a handful of queries at a time); SQLite uses no pool, so a
database file that disappears is noticed at the next run.

    db = Database("platform", DatabaseConfig(url="sqlite:///platform.db"))
    with db.connect(timeout=2.0) as conn:
        conn.execute(text("SELECT 1"))
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

from .schema import DatabaseConfig


def normalize_url(url: URL) -> URL:
    """``postgres://`` and ``postgresql://`` use psycopg 3, the driver we ship."""
    if url.drivername in ("postgres", "postgresql"):
        return url.set(drivername="postgresql+psycopg")
    return url


def describe_error(exc: BaseException) -> str:
    """A one-line description of a failure, without SQLAlchemy's SQL echo and links."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class Database:
    """One named database: a lazily connecting engine with a small pool."""

    def __init__(self, name: str, config: DatabaseConfig):
        self.name = name
        self.config = config
        url = normalize_url(make_url(config.url))
        self.dialect = url.get_backend_name()
        kwargs: dict = {}
        if self.dialect == "sqlite":
            kwargs["poolclass"] = NullPool
            url = _sqlite_existing_file(url)
        else:
            kwargs.update(pool_size=config.pool_size, max_overflow=config.max_overflow,
                          pool_timeout=config.connect_timeout, pool_pre_ping=True,
                          pool_recycle=1800)
        if self.dialect == "postgresql":
            # libpq takes whole seconds (and treats 1 as 2).
            kwargs["connect_args"] = {
                "connect_timeout": max(2, math.ceil(config.connect_timeout)),
                "application_name": "partnerwatch-exporter",
            }
        self.engine = create_engine(url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_read_only_pragmas)

    @contextmanager
    def connect(self, timeout: float) -> Iterator[Connection]:
        """A connection whose statements the database stops after ``timeout`` seconds."""
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")
                yield conn
            elif self.dialect == "sqlite":
                raw = conn.connection.driver_connection
                deadline = time.monotonic() + timeout
                raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
                conn.exec_driver_sql(f"PRAGMA busy_timeout = {max(1, int(timeout * 1000))}")
                try:
                    yield conn
                except OperationalError as exc:
                    if "interrupted" in str(exc) and time.monotonic() > deadline:
                        raise TimeoutError(f"query interrupted by the {timeout:g}s timeout"
                                           ) from None
                    raise
                finally:
                    raw.set_progress_handler(None, 0)
            else:
                yield conn
            conn.rollback()

    def dispose(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"<Database {self.name} ({self.dialect})>"


def _sqlite_existing_file(url: URL) -> URL:
    """Open SQLite files with ``mode=rw``: a missing file is an error, never created."""
    path = url.database
    if not path or path == ":memory:" or path.startswith("file:") or url.query.get("uri"):
        return url
    return url.set(database=f"file:{path}", query={**url.query, "mode": "rw", "uri": "true"})


def _sqlite_read_only_pragmas(dbapi_connection, _record) -> None:
    # The exporter never writes: ask SQLite to refuse writes from these connections.
    dbapi_connection.execute("PRAGMA query_only = ON")
