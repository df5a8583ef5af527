"""The Alertmanager webhook receiver: partner-scoped alerts become partner events.

Alertmanager's ``partner-webhooks`` receiver (alertmanager/alertmanager.yml)
posts every notification of a partner-scoped alert group to
``POST /internal/alertmanager/partner-alerts`` with a bearer token read from a
file.  For each alert with a ``partner`` label naming a known partner, one
``alert.firing`` or ``alert.resolved`` event is queued for that partner's
endpoints, all in one transaction; the answer comes as soon as it is
committed (the posts to partners run later, from the outbox).

**Idempotent.** The same notification may arrive twice: Alertmanager retries
when it did not get our answer, and each Alertmanager of a pair may send it.
An alert's notice is identified by (group key, fingerprint, status, start);
the same notice within ``webhooks.duplicate_window`` is counted as a
duplicate and queues nothing.  Alertmanager's ``repeat_interval`` (the
per-partner cooldown, 5m) must exceed the window, so that a real repeat is
delivered.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from flask import current_app, request
from sqlalchemy import update

from ticketing.api.base import Blueprint
from ticketing.db import db
from ticketing.errors import ApiError
from ticketing.models import Partner, utcnow
from ticketing.webhooks import events, metrics
from ticketing.webhooks.models import WebhookAlertReceipt
from ticketing.webhooks.schemas import NotificationResultSchema, NotificationSchema

if TYPE_CHECKING:
    from sqlalchemy import CursorResult
    from sqlalchemy.dialects.postgresql import Insert as PostgresqlInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert

PATH = "/internal/alertmanager/partner-alerts"
#: Receipts older than this are deleted (long past any duplicate window).
RECEIPT_RETENTION = timedelta(days=2)

bp = Blueprint(
    "alertmanager_receiver",
    __name__,
    url_prefix="/internal/alertmanager",
    description="Internal: Alertmanager's webhook for partner-scoped alerts "
    "(bearer token, not a partner API key)",
)


@bp.before_request
def _authorize() -> None:
    token = current_app.extensions["webhooks"].settings.receiver_token
    if token is None:
        raise ApiError(
            404,
            "not_found",
            "the Alertmanager receiver is not configured (webhooks.receiver_token_file)",
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise ApiError(
            401,
            "unauthorized",
            "a valid bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send the notification as application/json")


@bp.route("/partner-alerts", methods=["POST"])
@bp.arguments(NotificationSchema)
@bp.response(200, NotificationResultSchema)
@bp.doc(security=[{"AlertmanagerBearer": []}])
def partner_alerts(notification: dict[str, Any]) -> dict[str, int]:
    """Receive an Alertmanager notification of partner-scoped alerts"""
    settings = current_app.extensions["webhooks"].settings
    now = utcnow()
    window = timedelta(seconds=settings.duplicate_window)
    counts = {"queued": 0, "duplicates": 0, "ignored": 0}
    for alert in notification["alerts"]:
        partner_id = _partner(alert["labels"].get("partner"))
        if partner_id is None:
            counts["ignored"] += 1
            metrics.alert_notifications.labels(result="ignored").inc()
            continue
        if not _first_notice(_receipt_key(notification["groupKey"], alert), now, window):
            counts["duplicates"] += 1
            metrics.alert_notifications.labels(result="duplicate").inc()
            continue
        status = alert["status"]
        events.queue_event(
            partner_id,
            events.ALERT_RESOLVED if status == "resolved" else events.ALERT_FIRING,
            _event_data(alert),
        )
        counts["queued"] += 1
        metrics.alert_notifications.labels(result="queued").inc()
    db.session.execute(
        db.delete(WebhookAlertReceipt).where(WebhookAlertReceipt.last_at < now - RECEIPT_RETENTION)
    )
    db.session.commit()
    return counts


def _partner(value: Any) -> int | None:
    """The partner a ``partner`` label names: ASCII digits only (``int()`` would also
    read "١", "１", " 1", "+1" and "1_0"), a known partner."""
    text = value if isinstance(value, str) else ""
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        return None
    partner_id = int(text)
    if not 0 < partner_id < 2**31 or db.session.get(Partner, partner_id) is None:
        return None
    return partner_id


def _receipt_key(group_key: str, alert: dict[str, Any]) -> str:
    identity = alert.get("fingerprint") or repr(sorted(alert["labels"].items()))
    text = "\n".join((group_key, identity, alert["status"], alert["startsAt"]))
    return hashlib.sha256(text.encode()).hexdigest()


def _first_notice(key: str, now: datetime, window: timedelta) -> bool:
    """Record the notice ``key``; False when it was recorded within ``window``.

    Safe against the same notice arriving twice at once: the UPDATE takes the
    row's lock (PostgreSQL) or the database's write lock (SQLite) and the
    INSERT ... ON CONFLICT DO NOTHING lets one of two new notices in.
    """
    # An UPDATE's result is a CursorResult (it has the rowcount).
    refreshed = cast(
        "CursorResult[Any]",
        db.session.execute(
            update(WebhookAlertReceipt)
            .where(WebhookAlertReceipt.key == key, WebhookAlertReceipt.last_at <= now - window)
            .values(last_at=now),
            execution_options={"synchronize_session": False},
        ),
    )
    if refreshed.rowcount:
        return True
    dialect = db.session.get_bind().dialect.name
    stmt: PostgresqlInsert | SqliteInsert
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        stmt = postgresql_insert(WebhookAlertReceipt)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(WebhookAlertReceipt)
    inserted = db.session.execute(
        stmt.values(key=key, last_at=now)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(WebhookAlertReceipt.key)
    ).scalar_one_or_none()
    return inserted is not None


def _event_data(alert: dict[str, Any]) -> dict[str, Any]:
    labels, annotations = alert["labels"], alert.get("annotations") or {}
    data = {
        "alert": labels.get("alertname"),
        "status": alert["status"],
        "severity": labels.get("severity"),
        "summary": annotations.get("summary"),
        "description": annotations.get("description"),
        "starts_at": alert["startsAt"],
        "ends_at": alert.get("endsAt") if alert["status"] == "resolved" else None,
    }
    return data
