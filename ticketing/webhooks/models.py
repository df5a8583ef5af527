"""The partner webhook tables.

- ``webhook_endpoints``: a partner's endpoint (URL, chosen event types, signing
  secret, enabled or disabled and why, since when it fails);
- ``webhook_deliveries``: the delivery log, one row per attempt, which the
  partner reads (time, event, status code, attempt, latency, error);
- ``webhook_alert_receipts``: which Alertmanager notifications were turned into
  events lately, so the same notification posted twice (a retry, two
  Alertmanagers) is one delivery;
- ``partner_alerts``: each partner alert's latest state (firing or resolved),
  which the status package reads to link a partner's tickets to an incident.

The events themselves wait in the outbox (``outbox_messages``, kind
``partner_webhook``) until delivered.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ticketing.db import db
from ticketing.models import utcnow

if TYPE_CHECKING:
    # Flask-SQLAlchemy makes db.Model from ticketing.db.Base (the same declarative
    # class) at run time, which a type checker cannot follow.
    from ticketing.db import Base as Model
else:
    Model = db.Model


class WebhookEndpoint(Model):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        Index("ix_webhook_endpoints_partner_id_id", "partner_id", "id"),
        {"sqlite_autoincrement": True},  # ids are never reused (migration 0007)
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(200))
    #: Event types the partner chose (a JSON list of strings).
    events: Mapped[list[str]] = mapped_column(JSON)
    #: The HMAC key; shown to the partner once, when the endpoint is created.
    secret: Mapped[str] = mapped_column(String(100))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(400))
    #: First failed attempt since the last success (None while it works).
    failing_since: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Model):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(40))
    attempt: Mapped[int] = mapped_column(Integer)
    #: success, retry (will be retried), failed (given up), blocked (SSRF), dropped
    result: Mapped[str] = mapped_column(String(20))
    status_code: Mapped[int | None]
    latency_ms: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookAlertReceipt(Model):
    __tablename__ = "webhook_alert_receipts"

    #: sha256 of (group key, alert fingerprint, status, startsAt).
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_at: Mapped[datetime]


class PartnerAlert(Model):
    """A partner-scoped alert's latest state, by Alertmanager fingerprint: which
    alerts fire for a partner now (a signal for linking its tickets to incidents)."""

    __tablename__ = "partner_alerts"
    __table_args__ = (Index("ix_partner_alerts_partner_id_status", "partner_id", "status"),)

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    alertname: Mapped[str] = mapped_column(String(200))
    #: firing or resolved
    status: Mapped[str] = mapped_column(String(20))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
