"""Queue operations on the outbox table: enqueue, claim, record the outcome.

``enqueue`` runs in the caller's transaction.  The other three are used by the
deliverer, each in a short transaction of its own, so no database lock is held
while Alertmanager is being called:

1. :func:`claim_due` picks due messages and, in the same statement, pushes their
   ``next_attempt_at`` forward by the claim timeout and counts the attempt.  On
   PostgreSQL the candidate rows are selected ``FOR UPDATE SKIP LOCKED``, so two
   processes never pick the same row; on SQLite the single ``UPDATE ... WHERE id
   IN (SELECT ...) RETURNING`` is atomic because SQLite has one writer at a time.
   A claimed row is invisible to other deliverers until the claim times out.
2. The deliverer posts the alerts (outside any transaction).
3. :func:`mark_delivered` sets ``delivered_at``, or :func:`mark_failed` sets
   ``next_attempt_at`` to now + the backoff for the attempt count.

If the deliverer dies between 1 and 3, the claim times out and the message is
posted again.  That re-post is the same Alertmanager alert (same labels, same
``startsAt``), which Alertmanager merges into the one it already holds, so no
second notification goes out (see docs/outbox.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import ColumnElement, Table, func, insert, select, update

from ticketing.db import db, execute_core
from ticketing.outbox.models import OutboxMessage, utcnow

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PostgresqlInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

#: ``db.session.info`` flag: the transaction queued messages (the worker is woken on commit).
ENQUEUED_FLAG = "outbox_enqueued"


def isoformat(moment: datetime) -> str:
    """RFC 3339 in UTC, as Alertmanager expects (naive datetimes are UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds") + "Z"


def parse_isoformat(value: str) -> datetime:
    """The inverse of :func:`isoformat`: a naive UTC datetime."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _clean_labels(labels: Mapping[str, Any]) -> dict[str, str]:
    cleaned: dict[str, str] = {}
    for name, value in labels.items():
        if not _LABEL_NAME.match(name):
            raise ValueError(f"invalid Alertmanager label name {name!r}")
        if value is None or value == "":
            continue  # Alertmanager treats an empty label as absent
        cleaned[name] = str(getattr(value, "value", value))
    if "alertname" not in cleaned:
        raise ValueError("an outbox notification needs an 'alertname' label")
    return cleaned


def _clean_annotations(annotations: Mapping[str, Any] | None) -> dict[str, str]:
    cleaned: dict[str, str] = {}
    for name, value in (annotations or {}).items():
        if not _LABEL_NAME.match(name):
            raise ValueError(f"invalid Alertmanager annotation name {name!r}")
        if value is not None and value != "":
            cleaned[name] = str(value)
    return cleaned


def enqueue(
    kind: str,
    dedup_key: str,
    labels: Mapping[str, Any],
    annotations: Mapping[str, Any] | None = None,
    starts_at: datetime | None = None,
    generator_url: str | None = None,
) -> int | None:
    """Queue one notification in the current transaction of ``db.session``.

    ``labels`` identify the alert in Alertmanager: they must include
    ``alertname`` and whatever tells this event apart from others of its kind
    (``ticket="42"``), plus ``severity`` and ``team`` for routing.
    ``annotations`` carry the text (``summary``, ``description``, ...).
    ``starts_at`` is when the event happened (default: now).

    The row is committed or rolled back with the caller's transaction.  Returns
    the new row's id, or None when a message with this ``dedup_key`` already
    exists (the event was queued before; nothing is added).

        enqueue("ticket_created", f"ticket_created:{ticket.id}",
                {"alertname": "SupportTicketCreated", "severity": "warning",
                 "team": "support", "ticket": ticket.id},
                {"summary": f"New high priority ticket #{ticket.id}"})
    """
    payload: dict[str, Any] = {
        "labels": _clean_labels(labels),
        "annotations": _clean_annotations(annotations),
        "startsAt": isoformat(starts_at or utcnow()),
    }
    if generator_url:
        payload["generatorURL"] = generator_url
    return enqueue_payload(kind, dedup_key, payload)


def enqueue_payload(kind: str, dedup_key: str, payload: Mapping[str, Any]) -> int | None:
    """Queue a message whose ``payload`` a delivery channel other than Alertmanager reads.

    The same transaction and ``dedup_key`` rules as :func:`enqueue`; the
    channel registered for ``kind`` (``Outbox.add_channel``) delivers it.
    """
    if not kind or not dedup_key:
        raise ValueError("kind and dedup_key are required")
    if len(dedup_key) > 255:
        raise ValueError("dedup_key is longer than 255 characters")
    now = utcnow()
    values = {
        "kind": kind,
        "dedup_key": dedup_key,
        "payload": dict(payload),
        "created_at": now,
        "attempts": 0,
        "next_attempt_at": now,
    }

    dialect = db.session.get_bind().dialect.name
    stmt = _insert_statement(dialect)
    new_id: int | None
    if stmt is not None:
        # INSERT ... ON CONFLICT DO NOTHING: a concurrent transaction queuing the
        # same event cannot make the caller's transaction fail.
        new_id = execute_core(stmt, values).scalar_one_or_none()
    else:
        exists = db.session.execute(
            select(OutboxMessage.id).where(OutboxMessage.dedup_key == dedup_key)
        ).first()
        new_id = None
        if exists is None:
            new_id = db.session.execute(
                insert(OutboxMessage).values(**values).returning(OutboxMessage.id)
            ).scalar_one()
    if new_id is not None:
        db.session.info[ENQUEUED_FLAG] = True
    return new_id


def enqueue_payloads(kind: str, items: Sequence[tuple[str, Mapping[str, Any]]]) -> int:
    """Queue many messages of ``kind`` (``(dedup_key, payload)`` pairs) in the current
    transaction with multi-row ``INSERT ... ON CONFLICT DO NOTHING`` statements (a
    thousand rows each); the same rules as :func:`enqueue_payload`. Returns how many
    were new."""
    if not items:
        return 0
    if not kind or any(not key or len(key) > 255 for key, _ in items):
        raise ValueError("kind and dedup_keys (at most 255 characters) are required")
    dialect = db.session.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):
        return sum(enqueue_payload(kind, key, payload) is not None for key, payload in items)
    now = utcnow()
    rows = [
        {
            "kind": kind,
            "dedup_key": key,
            "payload": dict(payload),
            "created_at": now,
            "attempts": 0,
            "next_attempt_at": now,
        }
        for key, payload in items
    ]
    # One statement compiled once, its rows sent a thousand at a time (SQLAlchemy's
    # "insertmanyvalues": multi-row INSERT ... VALUES ... RETURNING).
    added = len(db.session.execute(_insert_statement(dialect), rows).all())
    if added:
        db.session.info[ENQUEUED_FLAG] = True
    return added


@cache
def _insert_statement(dialect: str) -> Any:
    """``INSERT ... ON CONFLICT (dedup_key) DO NOTHING RETURNING id`` for ``dialect``
    (None where there is no such statement), built once; the values are parameters."""
    table = cast(Table, OutboxMessage.__table__)  # a declared table (its __tablename__)
    stmt: PostgresqlInsert | SqliteInsert
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        stmt = postgresql_insert(table)
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table)
    else:
        return None
    return stmt.on_conflict_do_nothing(index_elements=["dedup_key"]).returning(table.c.id)


@dataclass(frozen=True)
class Claimed:
    """A message claimed for one delivery attempt (``attempts`` includes this one)."""

    id: int
    kind: str
    dedup_key: str
    payload: dict[str, Any]
    attempts: int


def claim_due(
    limit: int,
    claim_timeout: float,
    now: datetime | None = None,
    kinds: Collection[str] | None = None,
    exclude_kinds: Collection[str] = (),
) -> list[Claimed]:
    """Claim up to ``limit`` due messages for this deliverer and commit the claim.

    ``kinds`` claims only messages of those kinds, ``exclude_kinds`` all but
    those (each delivery channel claims its own kinds).  Runs in transactions
    of its own: call it with nothing else pending in ``db.session``.
    """
    now = now or utcnow()
    is_due: tuple[ColumnElement[bool], ...] = (
        OutboxMessage.delivered_at.is_(None),
        OutboxMessage.next_attempt_at <= now,
    )
    if kinds is not None:
        is_due += (OutboxMessage.kind.in_(list(kinds)),)
    if exclude_kinds:
        is_due += (OutboxMessage.kind.not_in(list(exclude_kinds)),)
    # A plain read first: most polls find nothing, and a read takes no write
    # lock (SQLite has a single one for the whole database).
    anything = db.session.execute(select(OutboxMessage.id).where(*is_due).limit(1)).first()
    db.session.commit()
    if anything is None:
        return []
    due = (
        select(OutboxMessage.id)
        .where(*is_due)
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
    )
    if db.session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    stmt = (
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(due))
        .values(
            attempts=OutboxMessage.attempts + 1,
            next_attempt_at=now + timedelta(seconds=claim_timeout),
        )
        .returning(
            OutboxMessage.id,
            OutboxMessage.kind,
            OutboxMessage.dedup_key,
            OutboxMessage.payload,
            OutboxMessage.attempts,
        )
    )
    try:
        rows = db.session.execute(stmt, execution_options={"synchronize_session": False}).all()
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return sorted((Claimed(*row) for row in rows), key=lambda c: c.id)


def mark_delivered(ids: list[int], now: datetime | None = None) -> None:
    if not ids:
        return
    try:
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.delivered_at.is_(None))
            .values(delivered_at=now or utcnow(), last_error=None),
            execution_options={"synchronize_session": False},
        )
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise


def mark_finished(claimed: Claimed, error: str, now: datetime | None = None) -> None:
    """Give up on a message that must not be retried (a partner endpoint answered 404):
    it leaves the queue like a delivered one, ``last_error`` says why."""
    try:
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == claimed.id, OutboxMessage.delivered_at.is_(None))
            .values(delivered_at=now or utcnow(), last_error=error[:2000]),
            execution_options={"synchronize_session": False},
        )
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise


def mark_failed(
    claimed: list[Claimed],
    error: str,
    backoff: Callable[[int], float],
    now: datetime | None = None,
) -> None:
    """Schedule the next attempt of each message: now + ``backoff(attempts)`` seconds."""
    if not claimed:
        return
    now = now or utcnow()
    rows = [
        {
            "id": c.id,
            "last_error": error[:2000],
            "next_attempt_at": now + timedelta(seconds=backoff(c.attempts)),
        }
        for c in claimed
    ]
    try:
        db.session.execute(update(OutboxMessage), rows)  # ORM bulk UPDATE by primary key
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise


def drop_queued(kind: str, dedup_prefix: str, reason: str, now: datetime | None = None) -> int:
    """Give up on every undelivered message of ``kind`` whose ``dedup_key`` starts with
    ``dedup_prefix`` (what waited for a deleted or disabled partner webhook endpoint),
    in the caller's transaction: each leaves the queue like a delivered one, with
    ``reason`` as its ``last_error``. Returns how many.

    A message claimed at that moment is dropped too: its deliverer's outcome is
    recorded on it, but a finished message is never claimed again (and its channel
    looks up the endpoint again before posting)."""
    if not kind or not dedup_prefix:
        raise ValueError("kind and dedup_prefix are required")
    result = db.session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.kind == kind,
            OutboxMessage.dedup_key.startswith(dedup_prefix, autoescape=True),
            OutboxMessage.delivered_at.is_(None),
        )
        .values(delivered_at=now or utcnow(), last_error=reason[:2000]),
        execution_options={"synchronize_session": False},
    )
    return int(getattr(result, "rowcount", 0) or 0)


def pending_count() -> int:
    """Messages not delivered yet (what the exporter reports as ``support_outbox_pending``)."""
    return db.session.execute(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.delivered_at.is_(None))
    ).scalar_one()


def release(claimed: list[Claimed], delay: float, now: datetime | None = None) -> None:
    """Put claimed messages back without an attempt: due again in ``delay`` seconds,
    their attempt count as before the claim (a deliverer that had no slot for them)."""
    if not claimed:
        return
    now = now or utcnow()
    rows = [
        {
            "id": c.id,
            "attempts": max(c.attempts - 1, 0),
            "next_attempt_at": now + timedelta(seconds=delay),
        }
        for c in claimed
    ]
    try:
        db.session.execute(update(OutboxMessage), rows)  # ORM bulk UPDATE by primary key
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
