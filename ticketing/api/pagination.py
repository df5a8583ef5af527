"""Cursor pagination for ticket lists (and every other keyset-paginated list).

Pages are cut by ticket id (keyset pagination), so results neither skip nor
repeat rows when tickets are added between requests. The cursor is opaque to
clients: the last id seen, the direction and a fingerprint of the filters
(so a cursor cannot be replayed with other filters), signed with a key derived
from the service's secret (:func:`service_secret`; HMAC-SHA256 through
itsdangerous, salt ``ticketing.cursor``). A cursor that is not ours, was
altered, or holds anything but what :func:`encode_cursor` writes (ids out of
1..2**31-1, other types, other keys) is a 400 ``invalid_cursor``, checked
before any query runs.

    page = paginate(query, Ticket.id, filters={"status": ["open"]}, cursor=arg,
                    limit=25, newest_first=True)
    {"items": page.items, "next_cursor": page.next_cursor}

A ticket's messages, attachments and audit entries page the same way, oldest
first (:func:`paginate_ticket_rows`); their cursors are bound to the list and
the ticket, so one list's cursor is refused by another.

Lists that page by hand use :func:`encode_cursor` and :func:`decode_cursor`
(in a request or app context: the key comes from ``current_app``).

A list may be ordered by another column first (the support queue by SLA due
time): pass ``sort_key`` (a non-null datetime expression) and ``sort_value``
(reading it from a row). The cursor then carries the last row's value too,
and pages are cut at (value, id), ascending.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from flask import Flask, current_app
from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import Select, and_, or_

from ticketing.db import MAX_ID, db
from ticketing.errors import ApiError

#: The salt that derives the cursor key from the service's secret (nothing else signs with it).
CURSOR_SALT = "ticketing.cursor"
#: Where the app keeps the secret cursors are signed with, once resolved.
SECRET_EXTENSION = "ticketing_cursor_secret"

_FINGERPRINT = re.compile(r"[0-9a-f]{16}")
#: A sort key as :func:`encode_cursor` writes it: a naive ISO 8601 time, nothing else.
_SORT_KEY = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?")


@dataclass
class Page:
    items: list[Any]
    next_cursor: str | None


def fingerprint(filters: Mapping[str, Any]) -> str:
    canonical = json.dumps(filters, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def service_secret(app: Flask) -> str:
    """The service's secret: ``SECRET_KEY`` (set by the console from
    ``$TICKETING_SECRET_KEY``, ``console.secret_key_file`` or the instance folder's
    generated key), else resolved the same way when the console is off; once per app."""
    secret: str | None = app.extensions.get(SECRET_EXTENSION)
    if secret:
        return secret
    secret = app.config.get("SECRET_KEY")
    if not secret:
        from ticketing.console import EXTENSION_KEY, secret_key
        from ticketing.console.settings import load_settings

        settings = app.extensions.get(EXTENSION_KEY) or load_settings(
            (app.config.get("TICKETING") or {}).get("console")
        )
        secret = secret_key(app, settings)
    app.extensions[SECRET_EXTENSION] = secret
    return secret


@lru_cache(maxsize=8)
def _serializer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(
        secret,
        salt=CURSOR_SALT,
        signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha256},
    )


def _signing() -> URLSafeSerializer:
    return _serializer(service_secret(current_app))


def encode_cursor(
    last_id: int, newest_first: bool, filters: Mapping[str, Any], key: datetime | None = None
) -> str:
    """The signed cursor after row ``last_id`` (and sort value ``key``) of a list."""
    payload: dict[str, Any] = {"after": last_id, "desc": newest_first, "f": fingerprint(filters)}
    if key is not None:
        payload["k"] = key.isoformat()
    token: str = _signing().dumps(payload)
    return token


def _bad_cursor(message: str = "the cursor is not valid") -> ApiError:
    return ApiError(400, "invalid_cursor", message)


def decode_cursor(cursor: str, newest_first: bool, filters: Mapping[str, Any]) -> int:
    """The last id of the previous page; 400 ``invalid_cursor`` for anything else."""
    return _decode(cursor, newest_first, filters)[0]


def _decode(
    cursor: str, newest_first: bool, filters: Mapping[str, Any], keyed: bool = False
) -> tuple[int, datetime | None]:
    if not isinstance(cursor, str) or not cursor.isascii() or len(cursor) > 512:
        raise _bad_cursor()
    try:
        payload = _signing().loads(cursor)
    except (BadData, ValueError, RecursionError):
        raise _bad_cursor() from None
    # Signed by us, and still checked: a leaked secret must not turn into a 500.
    if not isinstance(payload, dict) or not set(payload) <= {"after", "desc", "f", "k"}:
        raise _bad_cursor()
    last_id = payload.get("after")
    if (
        type(last_id) is not int
        or not 1 <= last_id <= MAX_ID
        or type(payload.get("desc")) is not bool
        or not isinstance(payload.get("f"), str)
        or not _FINGERPRINT.fullmatch(payload["f"])
    ):
        raise _bad_cursor()
    if payload["desc"] is not newest_first or payload["f"] != fingerprint(filters):
        raise _bad_cursor("the cursor belongs to a list with other filters or order")
    if not keyed:
        if "k" in payload:
            raise _bad_cursor("the cursor belongs to a list with other filters or order")
        return last_id, None
    raw_key = payload.get("k")
    if not isinstance(raw_key, str) or not _SORT_KEY.fullmatch(raw_key):
        raise _bad_cursor()
    try:
        key = datetime.fromisoformat(raw_key)
    except ValueError:
        raise _bad_cursor() from None
    return last_id, key


def paginate(
    query: Select[Any],
    id_column: Any,
    *,
    filters: Mapping[str, Any],
    cursor: str | None,
    limit: int,
    newest_first: bool,
    sort_key: Any = None,
    sort_value: Callable[[Any], datetime] | None = None,
) -> Page:
    """One page of ``query`` (a select of model rows) ordered by ``id_column``,
    or by ``sort_key`` then ``id_column`` (ascending) when a sort key is given."""
    if sort_key is not None:
        if sort_value is None:
            raise TypeError("paginate: a sort_key needs its sort_value")
        return _paginate_by_key(query, id_column, sort_key, sort_value, filters, cursor, limit)
    if cursor:
        last_id = decode_cursor(cursor, newest_first, filters)
        query = query.where(id_column < last_id if newest_first else id_column > last_id)
    query = query.order_by(id_column.desc() if newest_first else id_column.asc()).limit(limit + 1)
    rows = list(db.session.execute(query).scalars())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].id, newest_first, filters)
    return Page(rows, next_cursor)


def _paginate_by_key(
    query: Select[Any],
    id_column: Any,
    sort_key: Any,
    sort_value: Callable[[Any], datetime],
    filters: Mapping[str, Any],
    cursor: str | None,
    limit: int,
) -> Page:
    if cursor:
        last_id, last_key = _decode(cursor, False, filters, keyed=True)
        query = query.where(
            or_(sort_key > last_key, and_(sort_key == last_key, id_column > last_id))
        )
    query = query.order_by(sort_key.asc(), id_column.asc()).limit(limit + 1)
    rows = list(db.session.execute(query).scalars())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].id, False, filters, key=sort_value(rows[-1]))
    return Page(rows, next_cursor)


def paginate_ticket_rows(
    model: Any, ticket_id: int, *, internal: bool, cursor: str | None, limit: int
) -> Page:
    """One page of a ticket's messages, attachments or audit entries (``model``), oldest
    first; ``internal=False`` leaves out internal notes and files (what partners see)."""
    query = db.select(model).where(model.ticket_id == ticket_id)
    if not internal:
        query = query.where(model.__table__.c.internal.is_(False))
    scope = {"list": model.__tablename__, "ticket_id": ticket_id, "internal": internal}
    return paginate(query, model.id, filters=scope, cursor=cursor, limit=limit, newest_first=False)
