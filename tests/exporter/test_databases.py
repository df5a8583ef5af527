"""Databases through their DB-API drivers: URL forms, parameters, timeouts, the pool.

Configurations written when the exporter ran SQL through SQLAlchemy keep
working: the same URL forms and the same ``:name`` parameters. Everything
that connects does so to a real SQLite file or PostgreSQL server.
"""

from __future__ import annotations

import datetime as dt
import threading
from urllib.parse import quote

import pytest

from exporter.config import ConfigError, validate
from exporter.databases import Database, PoolTimeout
from exporter.dburl import InvalidDatabaseURL, parse_database_url, postgres_conninfo
from exporter.schema import DatabaseConfig
from exporter.sqltext import bind_names, compile_sql
from tests.harness import pid_alive, start_postgres, wait_until
from tests.harness.platform_data import seed_platform

SECRET = "hunter2-secret"


def database(url: str, **config) -> Database:
    return Database("test", DatabaseConfig(url=url, **config))


def run(db: Database, sql: str, timeout: float = 5.0, **values) -> list[tuple]:
    with db.connect(timeout) as conn:
        return conn.execute(db.prepare(sql), values).fetchall()


# ---------------------------------------------------------- SQL parameters


def test_parameters_are_read_as_sqlalchemy_text_read_them():
    sql = (
        "SELECT created_at::date AS day, '12\\:30' AS at, '100%' AS share "
        "FROM t WHERE created_at >= :since AND created_at < :now AND x > :since"
    )
    assert bind_names(sql) == ["since", "now"]  # casts and \: are not parameters
    qmark = compile_sql(sql, "qmark")
    assert qmark.sql == (
        "SELECT created_at::date AS day, '12:30' AS at, '100%' AS share "
        "FROM t WHERE created_at >= ? AND created_at < ? AND x > ?"
    )
    assert qmark.parameters({"now": 2, "since": 1}) == (1, 2, 1)
    pyformat = compile_sql(sql, "pyformat")
    assert pyformat.sql == (
        "SELECT created_at::date AS day, '12:30' AS at, '100%%' AS share "
        "FROM t WHERE created_at >= %(since)s AND created_at < %(now)s "
        "AND x > %(since)s"
    )
    assert pyformat.parameters({"now": 2, "since": 1, "unused": 3}) == {"since": 1, "now": 2}
    with pytest.raises(ValueError, match=":since"):
        qmark.parameters({"now": 2})


def test_literal_colons_percents_and_timestamps_on_each_database(db_url):
    seed_platform(db_url)
    db = database(db_url)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = run(
        db,
        "SELECT '12\\:30' AS at, '100%' AS share, COUNT(*) AS recent "
        "FROM transactions WHERE created_at >= :since AND created_at < :now",
        since=now - dt.timedelta(minutes=15),
        now=now,
    )
    # seed_platform: four transactions two minutes ago, one an hour ago.
    assert rows == [("12:30", "100%", 4)]
    db.dispose()


# ---------------------------------------------------------------- URL forms


@pytest.mark.parametrize(
    "scheme", ["postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"]
)
def test_postgresql_url_forms(postgres_server, scheme):
    url = postgres_server.url("postgres", driver=scheme)
    db = database(url)
    assert db.dialect == "postgresql"
    assert run(db, "SELECT current_database(), current_setting('application_name')") == [
        ("postgres", "partnerwatch-exporter")
    ]
    db.dispose()


def test_postgresql_hosts_in_the_query_string(postgres_server):
    port = postgres_server.port
    # The first host refuses; libpq goes on to the second.
    url = f"postgresql://postgres@/postgres?host=127.0.0.1:1&host=127.0.0.1:{port}"
    db = database(url)
    assert run(db, "SELECT inet_server_port()") == [(port,)]
    db.dispose()
    url = (
        f"postgresql://postgres@/postgres?host=127.0.0.1&port={port}"
        "&application_name=mine&options=-c%20work_mem%3D8MB"
    )
    db = database(url)
    assert run(db, "SELECT current_setting('application_name'), current_setting('work_mem')") == [
        ("mine", "8MB")
    ]
    db.dispose()


def test_sqlite_url_forms(tmp_path, monkeypatch):
    folder = tmp_path / "with space"
    folder.mkdir()
    seed_platform(f"sqlite:///{folder / 'platform.db'}")
    monkeypatch.chdir(tmp_path)
    for url in (
        f"sqlite:///{folder / 'platform.db'}",  # sqlite:////absolute
        "sqlite:///with space/platform.db",  # relative to the cwd
        f"sqlite+pysqlite:///{folder / 'platform.db'}?timeout=3",
        # A SQLite URI (uri=true) is the user's to percent-encode.
        f"sqlite:///file:{quote(str(folder / 'platform.db'))}?mode=ro&uri=true",
    ):
        db = database(url)
        assert db.dialect == "sqlite"
        assert run(db, "SELECT COUNT(*) FROM energy_pools") == [(1,)], url


def test_sqlite_never_creates_or_writes(tmp_path):
    missing = tmp_path / "missing.db"
    with pytest.raises(Exception, match="unable to open database file"):
        run(database(f"sqlite:///{missing}"), "SELECT 1")
    assert not missing.exists()
    url = f"sqlite:///{tmp_path / 'platform.db'}"
    seed_platform(url)
    with pytest.raises(Exception, match="readonly|read-only|query_only"):
        run(database(url), "DELETE FROM energy_pools")
    assert run(database(url), "SELECT COUNT(*) FROM energy_pools") == [(1,)]


def test_url_problems_are_told_without_the_url():
    cases = {
        "platform.db": "invalid database URL: expected dialect://",
        f"mysql+pymysql://u:{SECRET}@db/platform": "unsupported database 'mysql+pymysql'",
        f"postgresql://u:{SECRET}@db:port/platform": "the port must be a number",
        f"sqlite://u:{SECRET}@host/platform.db": "invalid SQLite URL",
        f"postgresql://u:{SECRET}@db/p?host=a:1&host=b:2&port=3": "give several hosts",
    }
    for url, expected in cases.items():
        with pytest.raises(InvalidDatabaseURL) as info:
            parse_database_url(url)
        assert expected in str(info.value)
        assert SECRET not in str(info.value)
    # libpq's keywords are checked with the configuration.
    with pytest.raises(ConfigError) as info:
        validate({"databases": {"p": {"url": f"postgresql://u:{SECRET}@db/p?sslmod=require"}}}, {})
    assert info.value.lines() == [
        'databases.p.url: invalid database URL: invalid connection option "sslmod"'
    ]
    parsed = parse_database_url(f"postgresql://exporter:{SECRET}%40x@[::1]:5433/platform")
    assert SECRET not in repr(parsed)
    assert postgres_conninfo(parsed) == {
        "user": "exporter",
        "password": f"{SECRET}@x",
        "host": "::1",
        "port": "5433",
        "dbname": "platform",
    }


def test_errors_never_show_the_password(postgres_server):
    refused = database(f"postgresql://postgres:{SECRET}@127.0.0.1:1/postgres", connect_timeout=1)
    with pytest.raises(Exception) as info:
        run(refused, "SELECT 1")
    message = refused.describe(info.value)
    assert message.startswith("OperationalError: connection failed") and SECRET not in message
    # Should a driver ever echo it, the description masks it.
    db = database(postgres_server.url("postgres").replace("postgres@", f"postgres:{SECRET}@"))
    with pytest.raises(Exception) as info:
        run(db, f"SELECT CAST('{SECRET}' AS INTEGER)")
    assert SECRET in str(info.value)
    assert (
        db.describe(info.value)
        == 'InvalidTextRepresentation: invalid input syntax for type integer: "***"'
    )
    db.dispose()


# ------------------------------------------------------- timeouts, the pool


def test_each_run_is_a_rolled_back_transaction_with_its_timeout(postgres_url):
    db = database(postgres_url)
    with db.connect(1.5) as conn:
        statement = db.prepare("SELECT current_setting('statement_timeout')")
        assert conn.execute(statement).fetchall() == [("1500ms",)]
        conn.execute(db.prepare("CREATE TABLE scratch (x INTEGER)"))
    assert run(db, "SELECT to_regclass('scratch') IS NULL") == [(True,)]
    with pytest.raises(Exception) as info:
        run(db, "SELECT pg_sleep(5)", timeout=0.2)
    assert db.describe(info.value) == "QueryCanceled: canceling statement due to statement timeout"
    assert run(db, "SELECT 1") == [(1,)]  # the connection is usable again
    db.dispose()


def test_pool_reuses_and_bounds_connections(postgres_url):
    db = database(postgres_url, pool_size=1, max_overflow=1, connect_timeout=0.5)
    pids = {run(db, "SELECT pg_backend_pid()")[0][0] for _ in range(5)}
    assert len(pids) == 1  # one connection, reused

    inside, release = threading.Barrier(3), threading.Event()

    def hold():
        with db.connect(5):
            inside.wait(5)
            release.wait(10)

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for holder in holders:
        holder.start()
    inside.wait(5)
    try:
        with pytest.raises(PoolTimeout, match="no free connection after 0.5s"):
            run(db, "SELECT 1")
    finally:
        release.set()
        for holder in holders:
            holder.join(10)
    assert run(db, "SELECT 1") == [(1,)]
    assert len(db._pool._idle) == 1  # the overflow connection was closed
    db.dispose()


def test_pooled_connections_survive_a_server_restart():
    server = start_postgres()
    try:
        db = database(server.url("postgres"), pool_size=2)
        [(before,)] = run(db, "SELECT pg_backend_pid()")
        server.kill()
        # Backends are not in the server's process group: each exits once it
        # sees the server gone. Until then it could still answer.
        wait_until(lambda: not pid_alive(before), timeout=10, message="the old backend to exit")
        server.start()
        # The pooled connection is stale: the run's first statement notices and
        # a new connection takes its place, so the first run after a restart works.
        [(after,)] = run(db, "SELECT pg_backend_pid()")
        assert after != before
        server.kill()
        wait_until(lambda: not pid_alive(after), timeout=10, message="the old backend to exit")
        with pytest.raises(Exception) as info:
            run(db, "SELECT 1", timeout=1)
        assert db.describe(info.value).startswith("OperationalError: connection failed")
        server.start()
        assert run(db, "SELECT 1") == [(1,)]
        db.dispose()
    finally:
        server.cleanup()
