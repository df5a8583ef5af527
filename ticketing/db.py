"""The database handle shared by every part of the ticket service.

Models anywhere in ``ticketing`` (tickets, security events, the outbox) use this
``db`` so they share one session and one transaction per request, and one
Alembic history (``ticketing/migrations``).

The session does not expire objects on commit: a view that commits and then
answers with what it wrote (a new ticket, a message) serializes it from
memory instead of reading it back. Every value is set in Python (no server
defaults, no triggers), so what is in memory after a commit is what the
database holds. Each request has its own session, so nothing stays in it
longer than the request.

:func:`init_app` sets the database up for an app (``create_app`` calls it),
as in Flask's tutorial (``flaskr/db.py``):

    init_app(app)      # the URL normalised, engine options, Flask-SQLAlchemy, Alembic
"""

from __future__ import annotations

import time
from functools import cache
from pathlib import Path
from typing import Any, TypeGuard, TypeVar

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, Table, bindparam, event, insert, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

# Stable constraint names, so migrations are the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate(render_as_batch=True)
MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def database_url(url: str) -> str:
    """Normalise a database URL: plain ``postgresql://`` means the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def init_app(app: Flask) -> None:
    """Set up the database of ``app``: ``SQLALCHEMY_DATABASE_URI`` normalised
    (:func:`database_url`), engine options, ``db`` and the Alembic migrations.

    SQLite: a 30 s busy timeout, foreign keys and WAL on every connection.
    Server databases: connections idle for a while are checked before use
    (:func:`ping_idle_connections`), unless the options ask for ``pool_pre_ping``.
    """
    url = database_url(app.config["SQLALCHEMY_DATABASE_URI"])
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    sqlite = make_url(url).get_backend_name() == "sqlite"
    if sqlite:
        options.setdefault("connect_args", {"timeout": 30})
    ping_idle = not sqlite and "pool_pre_ping" not in options
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR))
    if sqlite or ping_idle:
        with app.app_context():
            if sqlite:
                event.listen(db.engine, "connect", _sqlite_pragmas)
            else:
                ping_idle_connections(db.engine)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Foreign keys on, and WAL so gunicorn workers can read while one writes."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


M = TypeVar("M")

#: Largest id any table holds or any request may name: ids are 32-bit ``INTEGER`` columns
#: (PostgreSQL refuses a larger number in a comparison with "integer out of range").
MAX_ID = 2**31 - 1


def is_id(value: Any) -> TypeGuard[int]:
    """Whether ``value`` can be a row's id: an ``int`` (not a ``bool``) from 1 to
    :data:`MAX_ID`. Every id taken from a request (JSON, query string, form, label) is
    checked with this or :func:`id_from_text` before it reaches a query."""
    return type(value) is int and 1 <= value <= MAX_ID


def id_from_text(text: Any) -> int | None:
    """The id written in ``text`` (ASCII digits only, in range), or ``None``.

    ``int()`` would also read ``"１２"``, ``"١٢"``, ``" 12"``, ``"+12"`` and ``"1_2"``,
    and any number of digits; none of those names a row."""
    if not isinstance(text, str) or not (text.isascii() and text.isdigit()) or len(text) > 10:
        return None
    number = int(text)
    return number if is_id(number) else None


def upsert_insert(table: Table) -> Any:
    """An ``INSERT`` on ``table`` in the session's dialect, with ``on_conflict_do_nothing``
    and ``on_conflict_do_update`` (PostgreSQL's and SQLite's share that form)."""
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def execute_core(statement: Any, params: Any = None) -> Any:
    """Run a Core ``INSERT`` or ``SELECT`` on the connection of the session's transaction.

    The same connection and transaction as ``db.session.execute`` (which it
    begins when none is open), without the session's execute machinery: the
    ORM compile-state lookup and the ``do_orm_execute`` events, which a
    statement on a table, with no ORM entity in it, does not need. Not for
    ``UPDATE`` or ``DELETE``: listeners of ``do_orm_execute`` watch those
    (the key cache forgets keys on a bulk change of its tables).
    """
    return db.session.connection().execute(statement, params)


def insert_row(obj: M) -> M:
    """Insert the new ``obj``'s row at once and add it to the session, as flushing it would.

    One ``INSERT ... RETURNING`` of every column through SQLAlchemy Core, in
    the session's transaction; the returned row becomes the object's loaded
    state (its id, and the column defaults Core applied), and the object joins
    the session as persistent, so later changes to it are flushed as usual.
    It spares the unit of work's bookkeeping for a single new row on a
    request's hot path. For a plain mapped class whose new object carries
    only column values; anything else (related objects set on it, an
    inheriting mapper) is added and flushed the ordinary way.
    """
    state = sa_inspect(obj)
    mapper = state.mapper
    if (
        mapper.inherits is not None
        or state.key is not None
        or any(rel.key in state.dict for rel in mapper.relationships)
    ):
        db.session.add(obj)
        db.session.flush()
        return obj
    values = {column.key: state.dict[key] for key, column in _columns(mapper) if key in state.dict}
    row = execute_core(_insert_returning(mapper.local_table), values).one()
    _become_persistent(obj, mapper, row)
    return obj


def _become_persistent(obj: Any, mapper: Any, row: Any) -> None:
    """Make ``row`` (every column of the mapper's table) the loaded state of the new
    instance ``obj``, and add it to the session as a persistent object."""
    mapping = row._mapping
    for key, column in _columns(mapper):
        set_committed_value(obj, key, mapping[column])
    make_transient_to_detached(obj)
    db.session.add(obj)


@cache
def _columns(mapper: Any) -> tuple[tuple[str, Any], ...]:
    """(attribute, column) of each column attribute of ``mapper``."""
    return tuple((prop.key, prop.columns[0]) for prop in mapper.column_attrs)


@cache
def _insert_returning(table: Table) -> Any:
    return insert(table).returning(*table.columns)


def load_row(model: type[M], ident: Any) -> M | None:
    """Load the ``model`` row with primary key ``ident`` as an object (None when there is
    none), as ``Session.get`` does.

    An object already in the session is returned as it is; otherwise one Core
    ``SELECT`` of every column by primary key, in the session's transaction,
    and the row becomes a persistent object's loaded state (relationships
    load lazily on access, as after ``Session.get``). It spares the ORM's
    query compilation and row processing for one row on a request's hot
    path. For a plain mapped class with a single-column primary key; for
    anything else it is ``Session.get``.
    """
    session = db.session()
    mapper = sa_inspect(model)
    if mapper.inherits is not None or len(mapper.primary_key) != 1:
        return session.get(model, ident)
    found: M | None = session.identity_map.get(mapper.identity_key_from_primary_key([ident]))
    if found is not None:
        return found
    row = execute_core(_select_by_primary_key(mapper.local_table), {"pk": ident}).first()
    if row is None:
        return None
    obj: M = mapper.class_manager.new_instance()
    _become_persistent(obj, mapper, row)
    return obj


@cache
def _select_by_primary_key(table: Table) -> Any:
    (column,) = table.primary_key.columns
    return select(*table.columns).where(column == bindparam("pk"))


def update_columns(obj: M, **values: Any) -> M:
    """Set ``values`` on the persistent ``obj`` and update just those columns of its row at
    once, as a flush would.

    One Core ``UPDATE ... WHERE <primary key>`` of just those columns, in the
    session's transaction; the values become the object's loaded state, so
    nothing is left pending for them (any other change of the object is still
    flushed as usual). It spares the unit of work's bookkeeping for a change
    of a few columns of one row on a request's hot path. For a plain mapped
    class without a version counter; for anything else the values are set and
    flushed the ordinary way.
    """
    state = sa_inspect(obj)
    mapper = state.mapper
    if state.key is None or mapper.inherits is not None or mapper.version_id_col is not None:
        for key, value in values.items():
            setattr(obj, key, value)
        db.session.flush()
        return obj
    params = {mapper.get_property(key).columns[0].key: value for key, value in values.items()}
    for column, value in zip(mapper.primary_key, state.key[1], strict=True):
        params["pk_" + column.key] = value
    db.session.execute(_update_by_primary_key(mapper.local_table), params)
    for key, value in values.items():
        set_committed_value(obj, key, value)
    return obj


@cache
def _update_by_primary_key(table: Table) -> Any:
    """``UPDATE table SET <the columns given> WHERE <primary key> = :pk_<column>``."""
    where = [column == bindparam("pk_" + column.key) for column in table.primary_key.columns]
    return update(table).where(*where)


def autocommit_reads() -> None:
    """Let the rest of a request that only reads run without a transaction of its own.

    On PostgreSQL each statement then commits by itself, which spares the
    ``BEGIN`` and ``ROLLBACK`` round trips around it. At the default READ
    COMMITTED level every statement sees its own snapshot anyway, inside a
    transaction or not, so a reading request sees exactly what it would
    otherwise. Call it before the request's first statement (a no-op when a
    transaction is already open, and on other databases); after a commit the
    session is back to ordinary transactions.
    """
    session = db.session()
    if session.in_transaction() or session.get_bind().dialect.name != "postgresql":
        return
    session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


#: A pooled connection that sat unused for longer than this is checked before use.
PING_AFTER_IDLE = 1.0
_RETURNED_AT = "ticketing_returned_at"


def ping_idle_connections(engine: Engine, idle_seconds: float = PING_AFTER_IDLE) -> None:
    """Check a pooled connection (``SELECT 1``) before use if it sat idle a while.

    SQLAlchemy's ``pool_pre_ping`` checks every connection at every checkout:
    a round trip in every request. Here a connection that was in use within
    the last ``idle_seconds`` is handed out as it is: those are the ones a
    busy service reuses, and a database restarting under them fails the
    requests in flight anyway (the first error on a dead connection makes the
    pool replace all of its connections). The others (after a quiet spell, a
    restart of the database, an idle connection dropped by a firewall) are
    pinged first, and replaced when that fails.
    """

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get(_RETURNED_AT)
        if returned is None or time.monotonic() - returned <= idle_seconds:
            return  # just connected, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool drops this connection and checks out another (up to three times).
            raise DisconnectionError("the pooled connection failed a ping") from exc
