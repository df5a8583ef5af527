"""Cursor pagination for ticket lists.

Pages are cut by ticket id (keyset pagination), so results neither skip nor
repeat rows when tickets are added between requests. The cursor is opaque to
clients: base64url of the last id seen, the direction and a fingerprint of
the filters, so a cursor cannot be replayed with other filters.

    page = paginate(query, Ticket.id, filters={"status": ["open"]}, cursor=arg,
                    limit=25, newest_first=True)
    {"items": page.items, "next_cursor": page.next_cursor}

A list may be ordered by another column first (the support queue by SLA due
time): pass ``sort_key`` (a non-null datetime expression) and ``sort_value``
(reading it from a row). The cursor then carries the last row's value too,
and pages are cut at (value, id), ascending.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_

from ticketing.api.openapi import MAX_ID
from ticketing.db import db
from ticketing.errors import ApiError


@dataclass
class Page:
    items: list[Any]
    next_cursor: str | None


def fingerprint(filters: Mapping[str, Any]) -> str:
    canonical = json.dumps(filters, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_cursor(
    last_id: int, newest_first: bool, filters: Mapping[str, Any], key: datetime | None = None
) -> str:
    payload: dict[str, Any] = {"after": last_id, "desc": newest_first, "f": fingerprint(filters)}
    if key is not None:
        payload["k"] = key.isoformat()
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _bad_cursor(message: str = "the cursor is not valid") -> ApiError:
    return ApiError(400, "invalid_cursor", message)


def decode_cursor(cursor: str, newest_first: bool, filters: Mapping[str, Any]) -> int:
    """The last id of the previous page; 400 ``invalid_cursor`` for anything else."""
    return _decode(cursor, newest_first, filters)[0]


def _decode(
    cursor: str, newest_first: bool, filters: Mapping[str, Any], keyed: bool = False
) -> tuple[int, datetime | None]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _bad_cursor() from None
    if not isinstance(payload, dict):
        raise _bad_cursor()
    last_id = payload.get("after")
    if (
        isinstance(last_id, bool)
        or not isinstance(last_id, int)
        or not 0 <= last_id <= MAX_ID + 1
        or payload.get("desc") is not newest_first
    ):
        raise _bad_cursor()
    if payload.get("f") != fingerprint(filters):
        raise _bad_cursor("the cursor belongs to a list with other filters or order")
    if not keyed:
        if "k" in payload:
            raise _bad_cursor("the cursor belongs to a list with other filters or order")
        return last_id, None
    try:
        key = datetime.fromisoformat(payload["k"])
    except (KeyError, TypeError, ValueError):
        raise _bad_cursor() from None
    if key.tzinfo is not None:
        raise _bad_cursor()
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
