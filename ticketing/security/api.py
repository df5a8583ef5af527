"""Staff API: list and filter security events.

``GET /api/v1/staff/security-events`` (admins' API keys only, :func:`may_read_events`),
newest first (by
first occurrence; keyset pagination like the ticket lists, so pages neither
skip nor repeat rows while events come in). Query parameters, all optional:

- ``type``: an event type (``SUSPICIOUS_PATTERN``, ``FAILED_AUTH``, ...);
- ``severity``: ``critical``, ``warning`` or ``info``;
- ``ip``: the client IP, exactly;
- ``since``: ISO 8601 time (UTC when no zone is given): rows seen at or after it;
- ``limit`` (1-200, default 50) and ``cursor`` (``next_cursor`` of the previous page).

Answer: ``{"items": [event, ...], "next_cursor": "..." | null}``, each event as
in :meth:`SecurityEvent.as_dict`. Without a valid key the answer is 401, for a
partner's or an agent's key 403, both with the JSON error body.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from sqlalchemy import func

from ticketing.api.pagination import decode_cursor, encode_cursor
from ticketing.db import db
from ticketing.errors import ApiError
from ticketing.security.events import SEVERITIES, EventType, SecurityEvent, fold_client_ip

bp = Blueprint("security_events", __name__, url_prefix="/api/v1/staff")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def _error(status: int, code: str, message: str, details: Any = None) -> Response:
    response = jsonify(error={"code": code, "message": message, "details": details or {}})
    response.status_code = status
    return response


def _parse_since(value: str) -> datetime:
    value = value.strip()
    if len(value) > 19 and value[-6] == " " and value[-3] == ":":  # "+02:00" read as " 02:00"
        value = value[:-6] + "+" + value[-5:]
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


class InvalidEventQuery(ValueError):
    """Query parameters that do not make a valid event query; ``problems`` per parameter."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__(problems)
        self.problems = problems


def _ipv6_prefix() -> int:
    monitor = current_app.extensions.get("security_monitor")
    return monitor.security.events.ipv6_prefix if monitor is not None else 64


def may_read_events(actor: Any) -> bool:
    """Who may read security events: the one rule of this API and of the support
    console's security page. Admins only: a staff member (``kind`` ``staff``) whose
    ``role`` is ``admin``; agents, partners and anonymous callers may not."""
    return (
        actor is not None
        and getattr(actor, "kind", None) == "staff"
        and getattr(actor, "role", None) == "admin"
    )


def find_events(args: Mapping[str, str]) -> tuple[list[SecurityEvent], str | None]:
    """One page of events, newest first, and the next page's cursor (the staff API's
    and the console's query). Raises :class:`InvalidEventQuery` for bad parameters."""
    problems: dict[str, str] = {
        name: "must not be empty (leave the parameter out instead)"
        for name in ("type", "severity", "ip", "since", "limit", "cursor")
        if name in args and not args[name]
    }
    conditions = []
    event_type = args.get("type")
    if event_type:
        if event_type not in {t.value for t in EventType}:
            problems["type"] = "must be one of " + ", ".join(t.value for t in EventType)
        conditions.append(SecurityEvent.type == event_type)
    severity = args.get("severity")
    if severity:
        if severity not in SEVERITIES:
            problems["severity"] = "must be one of " + ", ".join(SEVERITIES)
        conditions.append(SecurityEvent.severity == severity)
    ip = args.get("ip")
    if ip:  # an IPv6 address also finds the row of its network (events fold by network)
        folded = fold_client_ip(ip, _ipv6_prefix())
        conditions.append(SecurityEvent.client_ip.in_({ip, folded or ip}))
    since = args.get("since")
    if since:
        try:
            conditions.append(SecurityEvent.last_seen >= _parse_since(since))
        except ValueError:
            problems["since"] = "must be an ISO 8601 time such as 2024-05-01T12:00:00Z"
    limit = DEFAULT_LIMIT
    raw_limit = args.get("limit")
    if raw_limit:
        digits = raw_limit.isascii() and raw_limit.isdigit()
        if not digits or not 1 <= int(raw_limit[:4]) <= MAX_LIMIT:
            problems["limit"] = f"must be an integer from 1 to {MAX_LIMIT}"
        else:
            limit = int(raw_limit)
    filters = {k: args.get(k) for k in ("type", "severity", "ip", "since") if args.get(k)}
    after = None
    cursor = args.get("cursor")
    if cursor:
        try:
            after = decode_cursor(cursor[:512], True, filters)
        except ApiError as exc:
            problems["cursor"] = exc.message
    if problems:
        raise InvalidEventQuery(problems)

    query = db.select(SecurityEvent).where(*conditions)
    if after is not None:
        query = query.where(SecurityEvent.id < after)
    rows = (
        db.session.execute(query.order_by(SecurityEvent.id.desc()).limit(limit + 1)).scalars().all()
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].id, True, filters)
    return list(rows), next_cursor


def counts_by_type(since: datetime) -> dict[str, int]:
    """Occurrences per event type seen since ``since`` (every type, 0 included)."""
    counts = {t.value: 0 for t in EventType}
    rows = db.session.execute(
        db.select(SecurityEvent.type, func.sum(SecurityEvent.count))
        .where(SecurityEvent.last_seen >= since)
        .group_by(SecurityEvent.type)
    )
    counts.update({event_type: int(total or 0) for event_type, total in rows})
    return counts


@bp.get("/security-events")
def list_security_events() -> Response:
    from ticketing.security import request_state

    actor = request_state().current_actor()
    if actor is None:
        return _error(401, "unauthorized", "A valid API key is required.")
    if not may_read_events(actor):
        return _error(403, "forbidden", "Security events are visible to admins only.")
    try:
        rows, next_cursor = find_events(request.args)
    except InvalidEventQuery as exc:
        return _error(400, "invalid_query", "Invalid query parameters.", {"fields": exc.problems})
    return jsonify(items=[row.as_dict() for row in rows], next_cursor=next_cursor)


def document(app: Flask) -> None:
    """Describe the route in the ticket service's OpenAPI document, when the app has one."""
    if "ticketing_api" not in app.extensions:
        return
    from ticketing.api.openapi import document_route

    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    document_route(
        app,
        "/api/v1/staff/security-events",
        "get",
        tag="security",
        summary="List security events (admins only)",
        description="Newest first. Filters: `type`, `severity`, `ip`, `since` (ISO 8601); "
        "pagination: `limit` (at most 200) and `cursor` (the previous page's "
        "`next_cursor`). One event stands for all "
        "occurrences of its type by one actor from one IP on one UTC day (`count`).",
        responses={
            "200": {
                "description": "A page of events",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "items": {"type": "array", "items": {"type": "object"}},
                                "next_cursor": {"type": "string", "nullable": True},
                            },
                        }
                    }
                },
            },
            "400": {"description": "Invalid query parameters", **error},
            "401": {"description": "No valid API key", **error},
            "403": {"description": "Not an admin's API key", **error},
        },
    )
