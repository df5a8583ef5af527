"""The status page's tables (migration ``0009_incidents``).

- ``status_incidents``: an incident on one or more components; a draft until
  staff publish it (``published_at``), then public; ``status`` follows its
  updates (investigating, identified, monitoring, resolved);
- ``status_incident_updates``: what staff told partners, in order;
- ``status_alerts``: the platform alerts Alertmanager reported for each
  component (one row per alert fingerprint, its latest notice), which also
  makes the receiver idempotent;
- ``status_maintenances``: planned work on components, shown ahead;
- ``status_audit``: every step of incidents and maintenance, who and when;
- ``status_subscribers``: email subscriptions (double opt-in, per component);
- ``status_partner_links``: each partner's private status link (its hash);
- ``status_incident_suggestions``: tickets that may be about an incident, for
  staff to link or dismiss (migration ``0010_incident_tickets``; the links
  themselves are ``tickets.incident_id``);
- ``status_incident_replies``: which incident update went to which linked
  ticket as a public reply (each at most once).

Components themselves are configuration (``status.components``), referenced by id.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from ticketing.db import db
from ticketing.models import utcnow

if TYPE_CHECKING:
    from ticketing.db import Base as Model
else:
    Model = db.Model

INCIDENT_STATUSES = ("investigating", "identified", "monitoring", "resolved")
MAINTENANCE_STATUSES = ("scheduled", "in_progress", "completed", "cancelled")
ACTOR_KINDS = ("staff", "system", "alertmanager")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Incident(Model):
    __tablename__ = "status_incidents"
    __table_args__ = (
        CheckConstraint(_in("status", INCIDENT_STATUSES), name="status"),
        CheckConstraint(_in("impact", ("none", "minor", "major", "critical")), name="impact"),
        Index("ix_status_incidents_resolved_at", "resolved_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="investigating")
    impact: Mapped[str] = mapped_column(String(20), default="minor")
    #: Component ids (status.components) the incident affects.
    components: Mapped[list[str]] = mapped_column(JSON)
    #: ``alert`` (opened by an alert) or ``staff`` (opened by hand).
    source: Mapped[str] = mapped_column(String(20), default="staff")
    published_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    #: Resolving the incident resolves its linked tickets (with the closing message).
    resolve_tickets: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    #: The public reply those tickets get when it does (None: the resolving update's text).
    closing_message: Mapped[str | None] = mapped_column(Text)

    @property
    def published(self) -> bool:
        return self.published_at is not None


class IncidentUpdate(Model):
    __tablename__ = "status_incident_updates"
    __table_args__ = (
        CheckConstraint(_in("status", INCIDENT_STATUSES), name="status"),
        Index("ix_status_incident_updates_incident_id_id", "incident_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("status_incidents.id"))
    status: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StatusAlert(Model):
    """The latest notice of one platform alert (by Alertmanager fingerprint)."""

    __tablename__ = "status_alerts"
    __table_args__ = (Index("ix_status_alerts_component_status", "component", "status"),)

    #: Alertmanager's fingerprint (or a hash of the labels when it sent none).
    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    component: Mapped[str] = mapped_column(String(40))
    alertname: Mapped[str] = mapped_column(String(200))
    severity: Mapped[str | None] = mapped_column(String(20))
    summary: Mapped[str | None] = mapped_column(Text)
    #: firing or resolved
    status: Mapped[str] = mapped_column(String(20))
    starts_at: Mapped[str] = mapped_column(String(64))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("status_incidents.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Maintenance(Model):
    __tablename__ = "status_maintenances"
    __table_args__ = (
        CheckConstraint(_in("status", MAINTENANCE_STATUSES), name="status"),
        Index("ix_status_maintenances_ends_at", "ends_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    components: Mapped[list[str]] = mapped_column(JSON)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default="scheduled")
    #: The Alertmanager silence covering the window (while it is in progress).
    silence_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class StatusAudit(Model):
    """One step of an incident or a maintenance: who (``actor_kind``/``actor_id``), what, when."""

    __tablename__ = "status_audit"
    __table_args__ = (
        CheckConstraint(_in("actor_kind", ACTOR_KINDS), name="actor_kind"),
        Index("ix_status_audit_incident_id_id", "incident_id", "id"),
        Index("ix_status_audit_maintenance_id_id", "maintenance_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("status_incidents.id"))
    maintenance_id: Mapped[int | None] = mapped_column(ForeignKey("status_maintenances.id"))
    actor_kind: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[int | None]
    action: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Subscriber(Model):
    """An email subscription: confirmed (double opt-in) before any mail but the
    confirmation request; ``components`` empty means every component."""

    __tablename__ = "status_subscribers"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    components: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: When the last confirmation request was sent (at most one an hour).
    asked_at: Mapped[datetime | None]
    confirmed_at: Mapped[datetime | None]


class PartnerLink(Model):
    """A partner's private status link (page and Atom feed): only the token's SHA-256."""

    __tablename__ = "status_partner_links"

    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IncidentSuggestion(Model):
    """A ticket that may be about an incident (a weak match): staff link it or dismiss it."""

    __tablename__ = "status_incident_suggestions"
    __table_args__ = (Index("ix_status_incident_suggestions_incident_id", "incident_id"),)

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("status_incidents.id"), primary_key=True)
    score: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IncidentReply(Model):
    """An incident update posted as a public reply on a linked ticket: its primary
    key makes each (update, ticket) pair happen once, however often staff press."""

    __tablename__ = "status_incident_replies"

    update_id: Mapped[int] = mapped_column(
        ForeignKey("status_incident_updates.id"), primary_key=True
    )
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
