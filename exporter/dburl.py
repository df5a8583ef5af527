"""Database URLs as the configuration writes them, and the driver arguments they stand for.

The URL form is SQLAlchemy's (configurations written for earlier versions of
the exporter keep working), read here without SQLAlchemy:

    postgresql://user:secret@db:5432/platform?sslmode=require
    postgresql+psycopg://...  postgres://...  postgresql+psycopg2://...
    sqlite:///relative/platform.db  sqlite:////srv/platform.db
    sqlite:///file:platform.db?mode=ro&uri=true

PostgreSQL is reached through psycopg 3 whatever driver the URL names; its
query string holds libpq connection keywords (``sslmode``, ``options``,
``host=/var/run/postgresql`` for a socket, ``host=h1:5432&host=h2:5432`` for
several hosts). SQLite takes the ``sqlite3.connect`` arguments SQLAlchemy
accepted (``timeout``, ``uri``, ...); a plain path is opened read-write but
never created.

    >>> url = parse_database_url("postgresql://exporter:s%40cret@db/platform")
    >>> url.dialect, url.password, postgres_conninfo(url)["dbname"]
    ('postgresql', 's@cret', 'platform')
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote

#: SQLAlchemy's URL pattern (sqlalchemy.engine.url._parse_url).
_URL = re.compile(
    r"""
    (?P<name>[\w+]+)://
    (?:
        (?P<username>[^:/]*)
        (?::(?P<password>[^@]*))?
    @)?
    (?:
        (?:
            \[(?P<ipv6host>[^/?]+)\] |
            (?P<ipv4host>[^/:?]+)
        )?
        (?::(?P<port>[^/?]*))?
    )?
    (?:/(?P<database>[^?]*))?
    (?:\?(?P<query>.*))?
    """,
    re.X,
)

#: URL schemes accepted, by dialect (the part after ``+`` names a driver).
SCHEMES = {
    "postgresql": ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"),
    "sqlite": ("sqlite", "sqlite+pysqlite"),
}
#: sqlite3.connect arguments a SQLite URL's query string may set.
_SQLITE_ARGS: dict[str, Literal["bool"] | type[int | float | str]] = {
    "uri": "bool",
    "timeout": float,
    "isolation_level": str,
    "detect_types": int,
    "check_same_thread": "bool",
    "cached_statements": int,
}


class InvalidDatabaseURL(ValueError):
    """A URL that cannot be used; the message never repeats the URL (it may hold a password)."""


@dataclass(frozen=True)
class DatabaseURL:
    scheme: str
    dialect: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    database: str | None = None
    #: Query string; a key given more than once maps to a list.
    query: dict[str, str | list[str]] = field(default_factory=dict)


def parse_database_url(url: str) -> DatabaseURL:
    match = _URL.match(url)
    if match is None:
        raise InvalidDatabaseURL(
            "invalid database URL: expected dialect://user:password@host"
            ":port/database or sqlite:///path"
        )
    parts = match.groupdict()
    scheme = parts["name"]
    dialect = next((d for d, schemes in SCHEMES.items() if scheme in schemes), None)
    if dialect is None:
        raise InvalidDatabaseURL(
            f"unsupported database {scheme!r}: the exporter reads "
            "PostgreSQL (postgresql://, through psycopg 3) and SQLite "
            "(sqlite:///path)"
        )
    query: dict[str, str | list[str]] = {}
    for key, value in parse_qsl(parts["query"] or ""):
        if key in query:
            previous = query[key]
            query[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            query[key] = value
    port = None
    if parts["port"]:
        if not parts["port"].isdigit():
            raise InvalidDatabaseURL("invalid database URL: the port must be a number")
        port = int(parts["port"])
    username, password, database = (
        None if parts[k] is None else unquote(parts[k])
        for k in ("username", "password", "database")
    )
    parsed = DatabaseURL(
        scheme=scheme,
        dialect=dialect,
        username=username,
        password=password,
        host=parts["ipv4host"] or parts["ipv6host"],
        port=port,
        database=database,
        query=query,
    )
    # Check what each driver needs now, so a bad URL is a configuration error.
    if dialect == "sqlite":
        sqlite_arguments(parsed)
    else:
        postgres_conninfo(parsed)
    return parsed


# ------------------------------------------------------------------- SQLite


def _as_bool(key: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "on", "y", "t", "1"):
        return True
    if lowered in ("false", "no", "off", "n", "f", "0"):
        return False
    raise InvalidDatabaseURL(f"invalid database URL: {key} must be true or false")


def sqlite_arguments(url: DatabaseURL) -> tuple[str, dict[str, Any]]:
    """``(database, kwargs)`` for ``sqlite3.connect``.

    A plain path becomes ``file:/abs/path?mode=rw`` (opened with ``uri=True``),
    so a missing file is an error rather than a new empty database. With
    ``uri=true`` the path is a SQLite URI and the other query keys are its
    parameters, as with SQLAlchemy.
    """
    if url.username or url.password or url.host or url.port:
        raise InvalidDatabaseURL(
            "invalid SQLite URL: use sqlite:///relative/path.db, "
            "sqlite:////absolute/path.db or sqlite://"
        )
    kwargs: dict[str, Any] = {}
    rest: dict[str, str] = {}
    for key, value in url.query.items():
        if isinstance(value, list):
            raise InvalidDatabaseURL(f"invalid database URL: {key} is given more than once")
        kind = _SQLITE_ARGS.get(key)
        if kind is None:
            rest[key] = value
        elif kind == "bool":
            kwargs[key] = _as_bool(key, value)
        else:
            try:
                kwargs[key] = kind(value)
            except ValueError:
                raise InvalidDatabaseURL(
                    f"invalid database URL: {key} must be {kind.__name__}"
                ) from None
    path = url.database or ""
    if kwargs.get("uri"):
        if rest:
            path += "?" + "&".join(f"{key}={rest[key]}" for key in sorted(rest))
        return path, kwargs
    if not path or path == ":memory:":
        return ":memory:", kwargs
    kwargs["uri"] = True
    return f"file:{quote(os.path.abspath(path))}?mode=rw", kwargs


# --------------------------------------------------------------- PostgreSQL


def postgres_conninfo(url: DatabaseURL) -> dict[str, str]:
    """libpq connection keywords: the URL's parts, then its query string (which wins)."""
    info: dict[str, str] = {}
    for key, value in (
        ("user", url.username),
        ("password", url.password),
        ("host", url.host),
        ("port", url.port),
        ("dbname", url.database),
    ):
        if value not in (None, ""):
            info[key] = str(value)
    query = dict(url.query)
    hosts, ports = query.pop("host", None), query.pop("port", None)
    if isinstance(hosts, list):  # host=h1:p1&host=h2:p2
        if ports is not None:
            raise InvalidDatabaseURL(
                "invalid database URL: give several hosts either as "
                "host=h1:p1&host=h2:p2 or as host=h1,h2&port=p1,p2"
            )
        pairs = [host.split(":", 1) if ":" in host else (host, "") for host in hosts]
        info["host"] = ",".join(host for host, _ in pairs)
        if any(port for _, port in pairs):
            info["port"] = ",".join(port for _, port in pairs)
    elif hosts is not None:
        single = re.match(r"^([a-zA-Z0-9\-.]*):(\d*)$", hosts)
        if single and ports is None:  # host=h:p
            info["host"], port = single.groups()
            if port:
                info["port"] = port
        else:
            info["host"] = hosts
    if ports is not None:
        info["port"] = ",".join(ports) if isinstance(ports, list) else ports
    for key, given in query.items():
        if isinstance(given, list):
            raise InvalidDatabaseURL(f"invalid database URL: {key} is given more than once")
        info[key] = given
    return info
