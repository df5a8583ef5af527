"""Security events: the ``security_events`` table and how an occurrence is recorded.

One row stands for every occurrence of the same event type by the same actor
from the same client IP on the same (UTC) day: the row's ``hash`` is
``sha256(type|actor|ip|day)`` and is unique, and recording an occurrence adds
to that row's count (``UPDATE ... WHERE hash``, else ``INSERT ... ON CONFLICT
(hash) DO UPDATE SET count = count + 1`` on SQLite and PostgreSQL), atomic
however many workers report at once. An IPv6 client counts as its network
(``security.events.ipv6_prefix``, /64: one client holds a whole /64), and the
rows of one type and day are bounded: once ``security.events.max_rows_per_type_per_day``
rows exist, occurrences that would need a new row fold into the type's overflow
row of the day instead (still counted in the metric), so no client can grow the
table without bound by changing addresses.
``first_seen`` stays; ``last_seen``, ``severity``, ``method``, ``path`` and
``details`` become those of the latest occurrence.

An occurrence is written in a transaction of its own (a fresh app context, so a
fresh ``db.session``): a refused request is rolled back or never committed, and
its security event must survive that. Severe events (MULTIPLE_FAILED_LOGINS,
UNAUTHORIZED_ACCESS, SUSPICIOUS_PATTERN) are handed to the notification outbox
in that same transaction, on their first occurrence of the day and again at
the 10th, 100th, 1000th... so a long attack keeps the security team informed
without flooding it. Every occurrence also counts in
``security_events_total{type,severity}`` and is sent as the
:data:`severe_event` signal when severe.

    from ticketing.security import record_event, EventType

    record_event(EventType.UNAUTHORIZED_ACCESS,
                 details={"resource": "ticket", "resource_id": 42})
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import time as day_time
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from blinker import Namespace
from flask import current_app, has_request_context, request
from sqlalchemy import JSON, Index, String, Table, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from ticketing.db import db
from ticketing.security.metrics import security_events
from ticketing.security.settings import EventSettings

if TYPE_CHECKING:
    from flask import Flask
    from sqlalchemy.dialects.postgresql import Insert as PostgresqlInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
    from werkzeug.local import LocalProxy

    # Flask-SQLAlchemy makes db.Model from ticketing.db.Base (the same declarative
    # class) at run time, which a type checker cannot follow.
    from ticketing.db import Base as Model
else:
    Model = db.Model

#: Where events are logged (docs/security.md): the package's logger.
log = logging.getLogger("ticketing.security")

_signals = Namespace()

#: Sent for every occurrence of a severe event, inside the transaction that
#: records it: ``severe_event.send(app, event=RecordedEvent, notify=bool)``.
#: ``notify`` is true when this occurrence was handed to the outbox.
severe_event = _signals.signal("security-severe-event")


class EventType(StrEnum):
    SUSPICIOUS_PATTERN = "SUSPICIOUS_PATTERN"
    FAILED_AUTH = "FAILED_AUTH"
    MULTIPLE_FAILED_LOGINS = "MULTIPLE_FAILED_LOGINS"
    UNAUTHORIZED_ACCESS = "UNAUTHORIZED_ACCESS"
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"


SEVERITIES = ("critical", "warning", "info")

DEFAULT_SEVERITY: dict[EventType, str] = {
    EventType.SUSPICIOUS_PATTERN: "warning",
    EventType.FAILED_AUTH: "info",
    EventType.MULTIPLE_FAILED_LOGINS: "critical",
    EventType.UNAUTHORIZED_ACCESS: "warning",
    EventType.RATE_LIMIT_EXCEEDED: "warning",
}

#: Event types the security team hears about at once (through the outbox).
SEVERE: frozenset[EventType] = frozenset(
    {
        EventType.SUSPICIOUS_PATTERN,
        EventType.MULTIPLE_FAILED_LOGINS,
        EventType.UNAUTHORIZED_ACCESS,
    }
)

ALERT_NAMES = {
    EventType.SUSPICIOUS_PATTERN: "SecuritySuspiciousPattern",
    EventType.MULTIPLE_FAILED_LOGINS: "SecurityMultipleFailedLogins",
    EventType.UNAUTHORIZED_ACCESS: "SecurityUnauthorizedAccess",
}

RUNBOOK_URL = (
    "https://github.com/partnerwatch/partnerwatch/blob/main/docs/security.md"
    "#responding-to-a-security-alert"
)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class SecurityEvent(Model):
    """Every occurrence of one event type by one actor from one IP on one UTC day."""

    __tablename__ = "security_events"
    __table_args__ = (
        Index("ix_security_events_last_seen", "last_seen"),
        Index("ix_security_events_type_last_seen", "type", "last_seen"),
        Index("ix_security_events_client_ip", "client_ip"),
        {"sqlite_autoincrement": True},  # ids are never reused (migration 0007)
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(16))
    actor_kind: Mapped[str | None] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    client_ip: Mapped[str | None] = mapped_column(String(45))
    method: Mapped[str | None] = mapped_column(String(16))
    path: Mapped[str | None] = mapped_column(String(2048))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    count: Mapped[int] = mapped_column(default=1)
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "severity": self.severity,
            "actor": ({"kind": self.actor_kind, "id": self.actor_id} if self.actor_kind else None),
            "client_ip": self.client_ip,
            "method": self.method,
            "path": self.path,
            "details": self.details or {},
            "count": self.count,
            "first_seen": self.first_seen.isoformat() + "Z",
            "last_seen": self.last_seen.isoformat() + "Z",
        }


@dataclass(frozen=True)
class RecordedEvent:
    """What was recorded: the row's id and its count after this occurrence."""

    id: int | None
    type: EventType
    severity: str
    hash: str
    count: int
    actor_kind: str | None
    actor_id: str | None
    client_ip: str | None
    method: str | None
    path: str | None
    details: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=utcnow)


def event_hash(
    event_type: str, actor_kind: str | None, actor_id: str | None, client_ip: str | None, day: str
) -> str:
    """The folding key: ``sha256(type|actor|ip|day)``."""
    actor = f"{actor_kind or '-'}:{actor_id or '-'}"
    return hashlib.sha256(f"{event_type}|{actor}|{client_ip or '-'}|{day}".encode()).hexdigest()


def fold_client_ip(client_ip: str | None, ipv6_prefix: int) -> str | None:
    """The client IP events are folded by: an IPv6 address as its network of
    ``ipv6_prefix`` bits (``2001:db8:1:2::/64``; the address itself at 128), an
    IPv4-mapped one as the IPv4 address, anything else unchanged."""
    if not client_ip or ":" not in client_ip:
        return client_ip
    try:
        address = ipaddress.IPv6Address(client_ip.split("%")[0])
    except ValueError:
        return client_ip
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    if ipv6_prefix >= 128:
        return str(address)
    return str(ipaddress.IPv6Network((address, ipv6_prefix), strict=False))


def overflow_hash(event_type: str, day: str) -> str:
    """The folding key of the type's overflow row of ``day``."""
    return hashlib.sha256(f"{event_type}|overflow|{day}".encode()).hexdigest()


def should_notify(count: int) -> bool:
    """First occurrence, then the 10th, 100th, 1000th... (powers of ten)."""
    while count >= 10 and count % 10 == 0:
        count //= 10
    return count == 1


_DEFAULT_LIMITS = EventSettings()
_UNSET: Any = object()
#: Flask's ``current_app`` as what it is, a proxy (Flask types it as the app).
_app_proxy = cast("LocalProxy[Flask]", current_app)
_LOG_LEVELS = {"critical": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO}


def record_event(
    event_type: EventType | str,
    *,
    details: dict[str, Any] | None = None,
    severity: str | None = None,
    actor: Any = _UNSET,
    client_ip: str | None = _UNSET,
    method: str | None = _UNSET,
    path: str | None = _UNSET,
    coalesce: float = 0.0,
) -> RecordedEvent | None:
    """Record one occurrence (see the module documentation); never raises (except
    ValueError for a ``severity`` other than critical, warning or info).

    Inside a request, ``actor`` (an object with ``kind`` and ``id``, or None),
    ``client_ip``, ``method`` and ``path`` default to the request's. Returns
    None when the event could not be stored (it is still counted and logged).

    ``coalesce`` (seconds): write the row at most this often per process; the
    occurrences in between are added to the count with the next write (so a
    flood of refused requests costs the database one write a second). The
    occurrences of the last interval of a burst are only in the metric.
    """
    event_type = EventType(event_type)
    severity = severity or DEFAULT_SEVERITY[event_type]
    if severity not in SEVERITIES:  # a label value: the set is fixed (and counted from 0)
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)} (got {severity!r})")
    app = _app_proxy._get_current_object()
    monitor = app.extensions.get("security_monitor")
    in_request = has_request_context()
    if actor is _UNSET:
        actor = monitor.current_actor() if (monitor and in_request) else None
    if client_ip is _UNSET:
        client_ip = (
            monitor.client_ip()
            if (monitor and in_request)
            else (request.remote_addr if in_request else None)
        )
    if method is _UNSET:
        method = request.method if in_request else None
    if path is _UNSET:
        path = request.path if in_request else None
    # PostgreSQL text cannot hold NUL characters, and the columns have sizes.
    details = _scrub(details or {})
    method = _clean(method, 16)
    path = _clean(path, 2048)
    limits = monitor.security.events if monitor is not None else _DEFAULT_LIMITS
    client_ip = _clean(fold_client_ip(client_ip, limits.ipv6_prefix), 45)
    actor_kind = _clean(getattr(actor, "kind", None) if actor is not None else None, 16)
    actor_id = _clean(str(actor.id) if getattr(actor, "id", None) is not None else None, 64)

    security_events.labels(type=event_type.value, severity=severity).inc()
    now = utcnow()
    digest = event_hash(event_type.value, actor_kind, actor_id, client_ip, now.date().isoformat())
    occurrences = _coalesced(app, digest, coalesce) if coalesce else 1
    if not occurrences:
        return None
    values: dict[str, Any] = {
        "type": event_type.value,
        "severity": severity,
        "actor_kind": actor_kind,
        "actor_id": actor_id,
        "client_ip": client_ip,
        "method": method,
        "path": path,
        "details": details,
        "hash": digest,
        "count": occurrences,
        "first_seen": now,
        "last_seen": now,
    }
    log.log(
        _LOG_LEVELS.get(severity, logging.WARNING),
        "security event %s (%s) actor=%s:%s ip=%s %s %r %s",
        event_type.value,
        severity,
        actor_kind or "-",
        actor_id or "-",
        client_ip or "-",
        method or "-",
        path or "-",
        details,
    )
    try:
        with app.app_context():  # a fresh db.session: this event's own transaction
            try:
                found = _add_to_existing(values)
                if found is None and _rows_today(event_type.value, now, limits) >= (
                    limits.max_rows_per_type_per_day
                ):
                    values = _overflow(values, now, limits.max_rows_per_type_per_day)
                    found = _add_to_existing(values)
                row_id, count = found if found is not None else _upsert(values)
                recorded = RecordedEvent(
                    row_id,
                    event_type,
                    severity,
                    values["hash"],
                    count,
                    values["actor_kind"],
                    values["actor_id"],
                    values["client_ip"],
                    method,
                    path,
                    values["details"],
                    now,
                )
                if event_type in SEVERE:
                    notify = should_notify(count)
                    if notify:
                        _hand_to_outbox(recorded)
                    severe_event.send(app, event=recorded, notify=notify)
                db.session.commit()
            except BaseException:
                db.session.rollback()
                raise
    except Exception:
        log.exception("could not store security event %s", event_type.value)
        return None
    return recorded


# Per app (each app has its own database, so its own rows): digest -> (next
# write, occurrences counted since the last one).
_coalescing: weakref.WeakKeyDictionary[Any, dict[str, tuple[float, int]]] = (
    weakref.WeakKeyDictionary()
)
_coalescing_lock = threading.Lock()


def _coalesced(app: Any, digest: str, interval: float) -> int:
    """Occurrences to write now for ``digest`` (0: not yet, counted for later)."""
    now = time.monotonic()
    with _coalescing_lock:
        pending_writes = _coalescing.setdefault(app, {})
        next_write, pending = pending_writes.get(digest, (0.0, 0))
        if now < next_write:
            pending_writes[digest] = (next_write, pending + 1)
            return 0
        if len(pending_writes) > 10_000:  # old digests (other days, gone clients)
            for key in [k for k, (t, p) in pending_writes.items() if t < now and not p]:
                del pending_writes[key]
        pending_writes[digest] = (now + interval, 0)
        return pending + 1


def _clean(value: str | None, size: int) -> str | None:
    if value is None:
        return None
    return value.replace("\x00", "\\x00")[:size]


def _scrub(value: Any) -> Any:
    """``value`` (JSON-like) with NUL characters in its strings written out."""
    if isinstance(value, str):
        return value.replace("\x00", "\\x00")
    if isinstance(value, dict):
        return {_scrub(str(k)): _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


_LATEST = ("severity", "method", "path", "details", "last_seen")


def _add_to_existing(values: dict[str, Any]) -> tuple[int, int] | None:
    """Add the occurrences to the row with the same hash: its (id, count), or None
    when there is no such row yet."""
    table = cast(Table, SecurityEvent.__table__)  # a declared table (its __tablename__)
    row = db.session.execute(
        update(table)
        .where(table.c.hash == values["hash"])
        .values(count=table.c.count + values["count"], **{k: values[k] for k in _LATEST})
        .returning(table.c.id, table.c.count)
    ).first()
    if row is None:
        return None
    row_id, count = row
    return row_id, count


def _rows_today(event_type: str, now: datetime, limits: EventSettings) -> int:
    """Rows of ``event_type`` of the UTC day of ``now`` but its overflow row, counted
    up to the cap (a row's ``last_seen`` is on the day its hash names)."""
    table = cast(Table, SecurityEvent.__table__)
    rows = (
        select(table.c.id)
        .where(
            table.c.type == event_type,
            table.c.last_seen >= datetime.combine(now.date(), day_time()),
            table.c.hash != overflow_hash(event_type, now.date().isoformat()),
        )
        .limit(limits.max_rows_per_type_per_day)
        .subquery()
    )
    return int(db.session.execute(select(func.count()).select_from(rows)).scalar_one())


def _overflow(values: dict[str, Any], now: datetime, cap: int) -> dict[str, Any]:
    """The occurrence as one of the type's overflow row of the day: no actor nor IP of
    its own; ``details`` name the latest source."""
    latest = {
        "actor": (f"{values['actor_kind']}:{values['actor_id']}" if values["actor_kind"] else None),
        "client_ip": values["client_ip"],
        "details": values["details"],
    }
    return {
        **values,
        "actor_kind": None,
        "actor_id": None,
        "client_ip": None,
        "details": {"overflow": True, "max_rows_per_type_per_day": cap, "latest": latest},
        "hash": overflow_hash(values["type"], now.date().isoformat()),
    }


def _upsert(values: dict[str, Any]) -> tuple[int, int]:
    """Insert the row, or add to the count of the row with the same hash."""
    dialect = db.session.get_bind().dialect.name
    table = cast(Table, SecurityEvent.__table__)  # a declared table (its __tablename__)
    latest = ("severity", "method", "path", "details", "last_seen")
    # Each statement returns (id, count), unpacked: to a type checker ``row.count``
    # is the row's tuple method, not the column.
    if dialect in ("postgresql", "sqlite"):
        stmt: PostgresqlInsert | SqliteInsert
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            stmt = postgresql_insert(table).values(**values)
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(table).values(**values)
        upsert = stmt.on_conflict_do_update(
            index_elements=[table.c.hash],
            set_={
                "count": table.c.count + stmt.excluded.count,
                **{name: getattr(stmt.excluded, name) for name in latest},
            },
        ).returning(table.c.id, table.c.count)
        row_id, count = db.session.execute(upsert).one()
        return row_id, count
    # Any other database: insert in a savepoint, fold on a unique violation.
    try:
        with db.session.begin_nested():
            row_id, count = db.session.execute(
                table.insert().values(**values).returning(table.c.id, table.c.count)
            ).one()
            return row_id, count
    except IntegrityError:
        row_id, count = db.session.execute(
            update(table)
            .where(table.c.hash == values["hash"])
            .values(
                count=table.c.count + values["count"], **{name: values[name] for name in latest}
            )
            .returning(table.c.id, table.c.count)
        ).one()
        return row_id, count


def _hand_to_outbox(event: RecordedEvent) -> None:
    """Queue the alert for the security team in the current transaction."""
    if "outbox" not in current_app.extensions:  # an app without the outbox: the signal is all
        return
    from ticketing.outbox import enqueue

    who = (
        f"{event.actor_kind} {event.actor_id}" if event.actor_kind else "an unauthenticated client"
    )
    summary = {
        EventType.SUSPICIOUS_PATTERN: "Attack pattern in a request",
        EventType.MULTIPLE_FAILED_LOGINS: "Repeated failed API key checks",
        EventType.UNAUTHORIZED_ACCESS: "Access to another partner's data refused",
    }[event.type]
    description = (
        f"{summary} from {who} at {event.client_ip or 'unknown IP'}: "
        f"{event.method or ''} {event.path or ''} "
        f"({event.count} occurrence{'s' if event.count != 1 else ''} today). "
        f"Details: {_short(event.details)}"
    )
    enqueue(
        "security_event",
        f"security_event:{event.hash}:{event.count}",
        {
            "alertname": ALERT_NAMES[event.type],
            "severity": event.severity,
            "team": "security",
            "event_type": event.type.value,
            "security_event": event.id,
            "client_ip": event.client_ip,
        },
        {
            "summary": f"{summary} ({event.client_ip or 'unknown IP'})",
            "description": description,
            "runbook_url": RUNBOOK_URL,
        },
        starts_at=event.at,
    )


def _short(details: dict[str, Any], limit: int = 500) -> str:
    import json

    text = json.dumps(details, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit] + "..."
