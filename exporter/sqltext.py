"""Bind parameters in configured SQL: ``:name``, read the way SQLAlchemy's ``text()`` reads them.

Configurations written for earlier versions of the exporter (which ran SQL
through SQLAlchemy) keep their meaning: ``:name`` is a parameter when it is
not preceded by a colon, a word character or a backslash and not followed by
a colon or a word character, so PostgreSQL casts (``created_at::date``) are
left alone, and ``\\:name`` is a literal ``:name``. :func:`compile_sql`
rewrites the parameters into the driver's own placeholders:

    >>> compile_sql("SELECT 1 WHERE a >= :since AND b < :now", "qmark")
    Statement(sql='SELECT 1 WHERE a >= ? AND b < ?', names=('since', 'now'), positional=True)
    >>> compile_sql("SELECT '100%' WHERE a >= :since", "pyformat").sql
    "SELECT '100%%' WHERE a >= %(since)s"
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

#: The same patterns as SQLAlchemy's TextClause and its compiler.
BIND_PARAMS = re.compile(r"(?<![:\w\\]):(\w+)(?![:\w])")
ESCAPED_COLON = re.compile(r"\\(:\w*)(?![:\w])")


def bind_names(sql: str) -> list[str]:
    """The parameters of ``sql``, each once, in order of first appearance."""
    return list(dict.fromkeys(BIND_PARAMS.findall(sql)))


@dataclass(frozen=True)
class Statement:
    """SQL ready for one driver: ``qmark`` (sqlite3) or ``pyformat`` (psycopg)."""

    sql: str
    #: qmark: one name per placeholder, in order; pyformat: each name once.
    names: tuple[str, ...]
    positional: bool

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        """The driver's parameters from ``values`` (name -> value)."""
        missing = [name for name in dict.fromkeys(self.names) if name not in values]
        if missing:
            raise ValueError("no value for parameter " + ", ".join(f":{m}" for m in missing))
        if self.positional:
            return tuple(values[name] for name in self.names)
        return {name: values[name] for name in self.names}


def compile_sql(sql: str, paramstyle: Literal["qmark", "pyformat"]) -> Statement:
    names: list[str] = []
    if paramstyle == "qmark":

        def placeholder(match: re.Match[str]) -> str:
            names.append(match.group(1))
            return "?"
    elif paramstyle == "pyformat":
        # psycopg reads % as the start of a placeholder: literal ones are doubled.
        sql = sql.replace("%", "%%")

        def placeholder(match: re.Match[str]) -> str:
            names.append(match.group(1))
            return f"%({match.group(1)})s"
    else:
        raise ValueError(f"unsupported paramstyle {paramstyle!r}")
    text = ESCAPED_COLON.sub(lambda m: m.group(1), BIND_PARAMS.sub(placeholder, sql))
    positional = paramstyle == "qmark"
    return Statement(text, tuple(names) if positional else tuple(dict.fromkeys(names)), positional)
