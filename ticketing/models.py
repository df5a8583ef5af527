"""The ticket service's tables, as SQLAlchemy 2 typed models.

Every timestamp is UTC stored without a zone (``utcnow()``), like the
platform's own tables. Vocabularies (status, priority, ...) are plain strings
guarded by CHECK constraints, which migrate the same way on SQLite and
PostgreSQL. The schema itself is created by the Alembic migrations in
``ticketing/migrations``, never by ``create_all``.

    ticket = db.session.execute(
        db.select(Ticket).where(Ticket.partner_id == partner.id)
    ).scalars().first()
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ColumnElement,
    DateTime,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    and_,
    case,
    false,
    func,
    literal,
    or_,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ticketing.db import db
from ticketing.desk.choices import (
    ACTIVE_STATUSES,
    ACTOR_KINDS,
    CATEGORIES,
    PARTNER_STATUSES,
    PRIORITIES,
    SENDER_TYPES,
    STAFF_ROLES,
    STATUSES,
)

if TYPE_CHECKING:
    # Flask-SQLAlchemy makes db.Model from ticketing.db.Base (the same declarative
    # class) at run time, which a type checker cannot follow.
    from ticketing.db import Base as Model
else:
    Model = db.Model


def utcnow() -> datetime:
    """Now, in UTC, without a zone (how every timestamp is stored)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Partner(Model):
    """A company on the platform that files tickets."""

    __tablename__ = "partners"
    __table_args__ = (
        CheckConstraint(_in("status", PARTNER_STATUSES), name="status"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Staff(Model):
    """A member of the support team: an ``agent`` or an ``admin``."""

    __tablename__ = "staff"
    __table_args__ = (
        CheckConstraint(_in("role", STAFF_ROLES), name="role"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    role: Mapped[str] = mapped_column(String(20), default="agent")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Model):
    """An API key of a partner or of a staff member.

    The key itself (``pw_<prefix>_<secret>``) is shown once when it is created;
    only its non-secret ``prefix`` and its SHA-256 ``key_hash`` are stored.
    """

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("(partner_id IS NULL) <> (staff_id IS NULL)", name="one_owner"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"), index=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    partner: Mapped[Partner | None] = relationship()
    staff: Mapped[Staff | None] = relationship()


class Ticket(Model):
    """A partner's support request and its state, assignee and SLA due times."""

    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(_in("status", STATUSES), name="status"),
        CheckConstraint(_in("priority", PRIORITIES), name="priority"),
        CheckConstraint(_in("category", CATEGORIES), name="category"),
        Index("ix_tickets_partner_id_id", "partner_id", "id"),
        Index("ix_tickets_status_priority", "status", "priority"),
        Index(
            "ix_tickets_needs_triage",
            "id",
            postgresql_where=text("needs_triage"),
            sqlite_where=text("needs_triage"),
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="open")
    priority: Mapped[str] = mapped_column(String(20))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    first_response_at: Mapped[datetime | None]
    first_response_due_at: Mapped[datetime | None]
    resolution_due_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    #: The probability the category model gave the automatic category (None: chosen
    #: by the partner, or no model).
    category_confidence: Mapped[float | None] = mapped_column(Float)
    #: The automatic category was not confident enough: staff should check it.
    needs_triage: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: The status incident this ticket is about (``ticketing/status/linking.py``); no
    #: foreign key, so that adding it left the table as it was (incidents are never
    #: deleted).
    incident_id: Mapped[int | None] = mapped_column(index=True)
    #: Since when the SLA clock has been paused (its incident is open); None: it runs.
    sla_paused_at: Mapped[datetime | None]
    #: Seconds the SLA clock was paused before, added to both due times (``desk/sla.py``).
    sla_paused_seconds: Mapped[int] = mapped_column(default=0, server_default=text("0"))

    partner: Mapped[Partner] = relationship()
    assignee: Mapped[Staff | None] = relationship()

    # SLA state "now". The SQL forms below say the same for queries. A paused
    # clock (the ticket's incident is open) is never overdue.
    def first_response_overdue(self, now: datetime) -> bool:
        return (
            self.status in ACTIVE_STATUSES
            and self.sla_paused_at is None
            and self.first_response_at is None
            and self.first_response_due_at is not None
            and self.first_response_due_at < now
        )

    def resolution_overdue(self, now: datetime) -> bool:
        return (
            self.status in ACTIVE_STATUSES
            and self.sla_paused_at is None
            and self.resolution_due_at is not None
            and self.resolution_due_at < now
        )

    @classmethod
    def first_response_overdue_clause(cls, now: datetime) -> ColumnElement[bool]:
        return and_(
            cls.status.in_(ACTIVE_STATUSES),
            cls.sla_paused_at.is_(None),
            cls.first_response_at.is_(None),
            cls.first_response_due_at < now,
        )

    @classmethod
    def resolution_overdue_clause(cls, now: datetime) -> ColumnElement[bool]:
        return and_(
            cls.status.in_(ACTIVE_STATUSES),
            cls.sla_paused_at.is_(None),
            cls.resolution_due_at < now,
        )

    @classmethod
    def overdue_clause(cls, now: datetime) -> ColumnElement[bool]:
        return or_(cls.first_response_overdue_clause(now), cls.resolution_overdue_clause(now))

    # The next SLA due time: the first response's until it is given, then the
    # resolution's (NO_DUE_TIME when there is none). The queue sorts by it.
    def next_due_at(self) -> datetime:
        due = (
            self.first_response_due_at if self.first_response_at is None else self.resolution_due_at
        )
        return due if due is not None else NO_DUE_TIME

    @classmethod
    def next_due_clause(cls) -> ColumnElement[datetime]:
        return func.coalesce(
            case(
                (cls.first_response_at.is_(None), cls.first_response_due_at),
                else_=cls.resolution_due_at,
            ),
            literal(NO_DUE_TIME, DateTime()),
        )


#: What a ticket without a due time sorts by: after every real one.
NO_DUE_TIME = datetime(9999, 12, 31)


class Message(Model):
    """A message on a ticket; staff ``internal`` notes are never shown to partners."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(_in("sender_type", SENDER_TYPES), name="sender_type"),
        CheckConstraint("sender_type = 'staff' OR NOT internal", name="internal_staff_only"),
        Index("ix_messages_ticket_id_id", "ticket_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    sender_type: Mapped[str] = mapped_column(String(20))
    sender_id: Mapped[int]
    body: Mapped[str] = mapped_column(Text)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Attachment(Model):
    """A file attached to a ticket.

    The bytes live on disk under a generated ``storage_name``; the partner's
    ``filename`` is kept only here, for the download's Content-Disposition.
    """

    __tablename__ = "attachments"
    __table_args__ = (
        CheckConstraint(_in("uploader_type", SENDER_TYPES), name="uploader_type"),
        CheckConstraint("uploader_type = 'staff' OR NOT internal", name="internal_staff_only"),
        Index("ix_attachments_ticket_id_id", "ticket_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    uploader_type: Mapped[str] = mapped_column(String(20))
    uploader_id: Mapped[int]
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    filename: Mapped[str] = mapped_column(String(255))
    storage_name: Mapped[str] = mapped_column(String(64), unique=True)
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TicketAudit(Model):
    """One change to a ticket: who (``actor_kind``/``actor_id``), what, before, after, when.

    Automatic decisions (priority raised, category chosen) have actor kind
    ``system`` and say why in ``reason``.
    """

    __tablename__ = "ticket_audit"
    __table_args__ = (
        CheckConstraint(_in("actor_kind", ACTOR_KINDS), name="actor_kind"),
        Index("ix_ticket_audit_ticket_id_id", "ticket_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    actor_kind: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[int | None]
    field: Mapped[str] = mapped_column(String(40))
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(String(400))
    #: For an automatic category decision: the probability the model gave it.
    confidence: Mapped[float | None] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotencyKey(Model):
    """A partner's ``Idempotency-Key`` and the ticket its first request created."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("partner_id", "key"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConsoleSession(Model):
    """A signed-in support console session of a staff member (``ticketing/console/session.py``).

    The browser's cookie holds a random token; only its SHA-256 (``token_hash``)
    is stored. A session counts while it is not ended, not idle longer than
    ``console.idle_timeout``, not older than ``console.session_lifetime`` and its
    key is valid. ``ended_at``/``end_reason`` (``signed_out``, ``ended``: by the
    staff member from another session, ``idle``, ``expired``, ``key``: the key was
    revoked or its owner deactivated) are kept; ids are never reused.
    """

    __tablename__ = "console_sessions"
    __table_args__ = (
        Index("ix_console_sessions_staff_id_ended_at", "staff_id", "ended_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(20))
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(400))

    key: Mapped[ApiKey] = relationship()
