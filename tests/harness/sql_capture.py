"""Recording the SQL an app sends to its database, for tests about round trips.

with capture(app) as seen:
    client.get("/api/v1/tickets", headers=acme.headers)
assert not seen.touching("api_keys")
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import event

from ticketing.db import db


@dataclass
class Statement:
    sql: str
    #: Whether the DBAPI connection was in autocommit mode (PostgreSQL), else None.
    autocommit: bool | None

    @property
    def verb(self) -> str:
        return self.sql.lstrip().split(None, 1)[0].upper()


@dataclass
class Seen:
    statements: list[Statement] = field(default_factory=list)

    def verbs(self) -> list[str]:
        return [s.verb for s in self.statements]

    def touching(self, table: str) -> list[Statement]:
        """Statements that read or write ``table``."""
        words = (f"FROM {table}", f"INTO {table}", f"UPDATE {table}", f"JOIN {table}")
        return [s for s in self.statements if any(w in s.sql for w in words)]

    def writes(self) -> list[tuple[str, str]]:
        """(verb, table) of every INSERT, UPDATE and DELETE, in order."""
        found = []
        for s in self.statements:
            words = s.sql.split()
            if s.verb == "INSERT":
                found.append(("INSERT", words[2]))
            elif s.verb == "UPDATE":
                found.append(("UPDATE", words[1]))
            elif s.verb == "DELETE":
                found.append(("DELETE", words[2]))
        return found


@contextmanager
def capture(app) -> Iterator[Seen]:
    seen = Seen()

    def record(conn, _cursor, statement, _parameters, _context, _executemany):
        dbapi = conn.connection.dbapi_connection
        autocommit = getattr(dbapi, "autocommit", None)
        seen.statements.append(
            Statement(statement, autocommit if isinstance(autocommit, bool) else None)
        )

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
