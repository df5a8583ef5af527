"""The outbox table: notifications written in the same transaction as the data.

A row is one notification for Alertmanager.  It is inserted by
:func:`ticketing.outbox.enqueue` inside the transaction that creates the ticket,
the message or the security event, so it exists exactly when that change was
committed.  The delivery worker later claims it, posts it to Alertmanager and
sets ``delivered_at``; until then ``attempts``, ``next_attempt_at`` and
``last_error`` describe the retries.

``dedup_key`` names the event (``ticket_created:42``): it is unique, so the same
event is queued at most once however often it is reported.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from ticketing.db import db

if TYPE_CHECKING:
    # Flask-SQLAlchemy makes db.Model from ticketing.db.Base (the same declarative
    # class) at run time, which a type checker cannot follow.
    from ticketing.db import Base as Model
else:
    Model = db.Model


def utcnow() -> datetime:
    """The current UTC time as a naive datetime (the project stores UTC naive)."""
    return datetime.now(UTC).replace(tzinfo=None)


class OutboxMessage(Model):
    """One notification waiting for, or done with, delivery to Alertmanager.

    ``payload`` holds the alert without its ``endsAt``, which is computed at each
    post: ``{"labels": {...}, "annotations": {...}, "startsAt": "...Z",
    "generatorURL": "..."}``.
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (
        # The worker's query: undelivered rows due now.  Partial, so it stays as
        # small as the backlog however many rows were delivered.
        Index(
            "ix_outbox_messages_pending",
            "next_attempt_at",
            postgresql_where=text("delivered_at IS NULL"),
            sqlite_where=text("delivered_at IS NULL"),
        ),
        {"sqlite_autoincrement": True},  # ids are never reused (migration 0007)
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    dedup_key: Mapped[str] = mapped_column(String(255), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)

    @property
    def pending(self) -> bool:
        return self.delivered_at is None

    def __repr__(self) -> str:
        state = "delivered" if self.delivered_at else f"pending attempts={self.attempts}"
        return f"<OutboxMessage {self.id} {self.kind} {self.dedup_key} {state}>"
