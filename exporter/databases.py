"""The configured databases, through their DB-API drivers, with connections bounded in time.

Every query the exporter runs goes through :meth:`Database.connect`, which
asks the database itself to give up after the collector's timeout:

- PostgreSQL (psycopg 3): ``SET LOCAL statement_timeout`` (covers lock waits
  too) for the transaction the run uses; libpq's ``connect_timeout`` for
  unreachable servers;
- SQLite (``sqlite3``): a progress handler that interrupts a statement
  running past the deadline, and ``PRAGMA busy_timeout`` so waiting on a lock
  ends as well.

Connections are only read from and always rolled back. PostgreSQL
connections are kept in a small pool (:class:`ConnectionPool`); SQLite opens
a connection per run, so a database file that disappears is noticed at the
next run. Drivers are imported when a database of theirs is first used.

SQL is written with ``:name`` parameters (:mod:`exporter.sqltext`) and
prepared once per database; timestamps are bound as parameters, stored the
way each database compares them (naive UTC ``datetime`` for PostgreSQL, the
``YYYY-MM-DD HH:MM:SS.ffffff`` text SQLAlchemy writes for SQLite)::

    db = Database("platform", DatabaseConfig(url="sqlite:///platform.db"))
    ping = db.prepare("SELECT 1")
    with db.connect(timeout=2.0) as conn:
        conn.execute(ping).fetchall()
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from exporter.dburl import parse_database_url, postgres_conninfo, sqlite_arguments
from exporter.errors import describe_error
from exporter.schema import DatabaseConfig
from exporter.sqltext import Statement, compile_sql

APPLICATION_NAME = "partnerwatch-exporter"
#: Pooled PostgreSQL connections are replaced after this long.
RECYCLE_SECONDS = 1800.0


class Session:
    """One run's connection: executes prepared statements with their values."""

    def __init__(self, raw: Any, adapt: Callable[[Any], Any] | None = None):
        self.raw = raw
        self._adapt = adapt

    def execute(self, statement: Statement, values: Mapping[str, Any] | None = None) -> Any:
        """Run ``statement`` and return the driver's cursor (``description``, ``fetch*``)."""
        params = statement.parameters(values or {})
        if self._adapt is not None:
            params = tuple(map(self._adapt, params))
        return self.raw.execute(statement.sql, params)


class Database:
    """One named database: lazily connecting, with a small pool for PostgreSQL."""

    def __init__(self, name: str, config: DatabaseConfig):
        self.name = name
        self.config = config
        url = parse_database_url(config.url)
        self.dialect = url.dialect
        self._secrets = [s for s in (url.password,) if s]
        self._pool: ConnectionPool | None = None
        if self.dialect == "sqlite":
            self._sqlite = sqlite_arguments(url)
        else:
            info = postgres_conninfo(url)
            self._secrets += [v for k, v in info.items() if k == "password" and v]
            # libpq takes whole seconds (and treats 1 as 2).
            info["connect_timeout"] = str(max(2, math.ceil(config.connect_timeout)))
            info.setdefault("application_name", APPLICATION_NAME)
            self._pool = ConnectionPool(
                _psycopg_connector(info),
                size=config.pool_size,
                overflow=config.max_overflow,
                timeout=config.connect_timeout,
            )

    def prepare(self, sql: str) -> Statement:
        """``sql`` with its ``:name`` parameters in this database's driver's placeholders."""
        return compile_sql(sql, "qmark" if self.dialect == "sqlite" else "pyformat")

    @contextmanager
    def connect(self, timeout: float, snapshot: bool = False) -> Iterator[Session]:
        """A connection whose statements the database stops after ``timeout`` seconds.

        With ``snapshot``, every statement of the session sees the same state of
        the database (PostgreSQL: a repeatable-read transaction; SQLite: one read
        transaction), as a run that reads a table more than once needs.
        """
        if self.dialect == "sqlite":
            with self._sqlite_session(timeout, snapshot) as session:
                yield session
        else:
            with self._postgres_session(timeout, snapshot) as session:
                yield session

    def describe(self, exc: BaseException) -> str:
        """:func:`describe_error`, with this database's password masked should it appear."""
        text = describe_error(exc)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def dispose(self) -> None:
        if self._pool is not None:
            self._pool.close()

    def __repr__(self) -> str:
        return f"<Database {self.name} ({self.dialect})>"

    # ------------------------------------------------------------ PostgreSQL

    @contextmanager
    def _postgres_session(self, timeout: float, snapshot: bool = False) -> Iterator[Session]:
        limit = max(1, int(timeout * 1000))
        isolation = " ISOLATION LEVEL REPEATABLE READ READ ONLY" if snapshot else ""

        def begin(conn: Any) -> None:  # one round trip, which also tells a dead connection
            conn.execute(f"BEGIN{isolation}; SET LOCAL statement_timeout = {limit}")

        assert self._pool is not None  # every PostgreSQL database has one
        with self._pool.connection(begin) as conn:
            try:
                yield Session(conn)
            finally:
                try:
                    conn.execute("ROLLBACK")
                except Exception:  # a broken connection: the pool drops it
                    pass

    # ---------------------------------------------------------------- SQLite

    @contextmanager
    def _sqlite_session(self, timeout: float, snapshot: bool = False) -> Iterator[Session]:
        import sqlite3

        database, kwargs = self._sqlite
        conn = sqlite3.connect(database, **kwargs)
        try:
            # The exporter never writes: SQLite refuses writes from this connection.
            conn.execute("PRAGMA query_only = ON")
            deadline = time.monotonic() + timeout
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
            conn.execute(f"PRAGMA busy_timeout = {max(1, int(timeout * 1000))}")
            if snapshot:  # one read transaction: every statement sees the same database
                conn.execute("BEGIN")
            try:
                yield Session(conn, _sqlite_value)
            except sqlite3.OperationalError as exc:
                if "interrupted" in str(exc) and time.monotonic() > deadline:
                    raise TimeoutError(f"query interrupted by the {timeout:g}s timeout") from None
                raise
        finally:
            conn.close()


def _sqlite_value(value: Any) -> Any:
    """Timestamps as SQLAlchemy stores them in SQLite, so comparisons with stored text hold."""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _psycopg_connector(info: dict[str, str]) -> Callable[[], Any]:
    def connect() -> Any:
        import psycopg
        from psycopg.conninfo import make_conninfo

        # All libpq keywords, as exporter.config checked them: none is taken for an
        # option of connect() itself (prepare_threshold, ...).
        return psycopg.connect(make_conninfo("", **info), autocommit=True)

    return connect


class PoolTimeout(TimeoutError):
    pass


class ConnectionPool:
    """A few connections reused between runs.

    At most ``size + overflow`` connections exist at once (a run waits up to
    ``timeout`` for one); ``size`` of them stay open between runs and are
    replaced after ``recycle`` seconds. A connection taken from the pool is
    handed to ``setup`` (the run's first statement); if that fails with a
    connection error, the connection was stale (a restarted server): it is
    dropped and the next one tried, so a server that came back is used at
    once. Connections are checked in only when idle and unbroken.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        *,
        size: int,
        overflow: int,
        timeout: float,
        recycle: float = RECYCLE_SECONDS,
    ):
        self._connect = connect
        self._size = size
        self._limit = size + overflow
        self._timeout = timeout
        self._recycle = recycle
        self._slots = threading.BoundedSemaphore(self._limit)
        self._idle: list[tuple[Any, float]] = []
        self._lock = threading.Lock()

    @contextmanager
    def connection(self, setup: Callable[[Any], None]) -> Iterator[Any]:
        if not self._slots.acquire(timeout=self._timeout):
            raise PoolTimeout(f"no free connection after {self._timeout:g}s ({self._limit} in use)")
        try:
            conn, born = self._checkout(setup)
            try:
                yield conn
            finally:
                self._checkin(conn, born)
        finally:
            self._slots.release()

    def _checkout(self, setup: Callable[[Any], None]) -> tuple[Any, float]:
        import psycopg

        while True:
            with self._lock:
                conn, born = self._idle.pop() if self._idle else (None, 0.0)
            if conn is None:
                break
            if conn.closed or time.monotonic() - born > self._recycle:
                _close(conn)
                continue
            try:
                setup(conn)
            except psycopg.OperationalError:
                _close(conn)  # stale: the server went away since its last use
                continue
            except BaseException:
                _close(conn)
                raise
            return conn, born
        conn = self._connect()
        try:
            setup(conn)
        except BaseException:
            _close(conn)
            raise
        return conn, time.monotonic()

    def _checkin(self, conn: Any, born: float) -> None:
        from psycopg import pq

        if conn.closed or conn.broken or conn.info.transaction_status != pq.TransactionStatus.IDLE:
            _close(conn)
            return
        with self._lock:
            if len(self._idle) < self._size:
                self._idle.append((conn, born))
                return
        _close(conn)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            _close(conn)


def _close(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # closing is best effort
        pass
