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
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from flask import current_app
from sqlalchemy import update

from ticketing.api.base import Blueprint, max_body_bytes
from ticketing.auth import authorize_alertmanager
from ticketing.db import db, id_from_text, upsert_insert
from ticketing.models import Partner, utcnow
from ticketing.webhooks import events, metrics
from ticketing.webhooks.models import PartnerAlert, WebhookAlertReceipt
from ticketing.webhooks.schemas import NotificationResultSchema, NotificationSchema

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.dialects.postgresql import Insert as PostgresqlInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert

PATH = "/internal/alertmanager/partner-alerts"
#: Receipts older than this are deleted (long past any duplicate window).
RECEIPT_RETENTION = timedelta(days=2)
#: Keys or rows per statement of a notification's bulk work.
CHUNK = 1000

bp = Blueprint(
    "alertmanager_receiver",
    __name__,
    url_prefix="/internal/alertmanager",
    description="Internal: Alertmanager's webhook for partner-scoped alerts "
    "(bearer token, not a partner API key)",
)


@bp.before_request
def _authorize() -> None:
    authorize_alertmanager(
        current_app.extensions["webhooks"].settings.receiver_token, "webhooks.receiver_token_file"
    )


@bp.route("/partner-alerts", methods=["POST"])
@max_body_bytes(lambda: current_app.extensions["webhooks"].settings.receiver_max_bytes)
@bp.arguments(NotificationSchema)
@bp.response(200, NotificationResultSchema)
@bp.doc(security=[{"AlertmanagerBearer": []}])
def partner_alerts(notification: dict[str, Any]) -> dict[str, int]:
    """Receive an Alertmanager notification of partner-scoped alerts"""
    settings = current_app.extensions["webhooks"].settings
    now = utcnow()
    window = timedelta(seconds=settings.duplicate_window)
    counts = {"queued": 0, "duplicates": 0, "ignored": 0}
    # Thousands of alerts in one notification: a few statements for all of them
    # (partners, receipts, endpoints, the outbox rows in bulk), one transaction.
    named = [
        (alert, _partner_label(alert["labels"].get("partner"))) for alert in notification["alerts"]
    ]
    known = _known_partners({partner_id for _, partner_id in named if partner_id is not None})
    keyed: list[tuple[str, dict[str, Any], int]] = []
    for alert, partner_id in named:
        if partner_id is None or partner_id not in known:
            counts["ignored"] += 1
        else:
            keyed.append((_receipt_key(notification["groupKey"], alert), alert, partner_id))
    first = _first_notices({key for key, _, _ in keyed}, now, window)
    queued: list[tuple[int, str, dict[str, Any]]] = []
    for key, alert, partner_id in keyed:
        if key not in first:
            counts["duplicates"] += 1
            continue
        first.discard(key)  # the same notice twice in one notification: once
        status = alert["status"]
        queued.append(
            (
                partner_id,
                events.ALERT_RESOLVED if status == "resolved" else events.ALERT_FIRING,
                _event_data(alert),
            )
        )
    events.queue_events(queued)
    _record_states([(alert, partner_id) for key, alert, partner_id in keyed], now)
    counts["queued"] = len(queued)
    for result, name in (("queued", "queued"), ("duplicate", "duplicates"), ("ignored", "ignored")):
        if counts[name]:
            metrics.alert_notifications.labels(result=result).inc(counts[name])
    db.session.execute(
        db.delete(WebhookAlertReceipt).where(WebhookAlertReceipt.last_at < now - RECEIPT_RETENTION)
    )
    db.session.execute(
        db.delete(PartnerAlert).where(
            PartnerAlert.status == "resolved", PartnerAlert.updated_at < now - RECEIPT_RETENTION
        )
    )
    db.session.commit()
    return counts


def _partner_label(value: Any) -> int | None:
    """The partner id a ``partner`` label names: ASCII digits only (``int()`` would also
    read "١", "１", " 1", "+1" and "1_0"), in range; :func:`_known_partners` checks it exists."""
    return id_from_text(value)


def _known_partners(ids: set[int]) -> set[int]:
    ordered, known = sorted(ids), set[int]()
    for start in range(0, len(ordered), CHUNK):
        known.update(
            db.session.execute(
                db.select(Partner.id).where(Partner.id.in_(ordered[start : start + CHUNK]))
            ).scalars()
        )
    return known


def _receipt_key(group_key: str, alert: dict[str, Any]) -> str:
    identity = alert.get("fingerprint") or repr(sorted(alert["labels"].items()))
    text = "\n".join((group_key, identity, alert["status"], alert["startsAt"]))
    return hashlib.sha256(text.encode()).hexdigest()


def _first_notices(keys: set[str], now: datetime, window: timedelta) -> set[str]:
    """Record the notices ``keys``; returns those not recorded within ``window``.

    Safe against the same notice arriving twice at once: the UPDATE takes the
    rows' locks (PostgreSQL, in key order) or the database's write lock (SQLite)
    and the INSERT ... ON CONFLICT DO NOTHING lets one of two new notices in.
    """
    ordered = sorted(keys)
    first: set[str] = set()
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        first.update(
            db.session.execute(
                update(WebhookAlertReceipt)
                .where(
                    WebhookAlertReceipt.key.in_(chunk), WebhookAlertReceipt.last_at <= now - window
                )
                .values(last_at=now)
                .returning(WebhookAlertReceipt.key),
                execution_options={"synchronize_session": False},
            ).scalars()
        )
    new = [{"key": key, "last_at": now} for key in ordered if key not in first]
    if new:
        table = cast("Table", WebhookAlertReceipt.__table__)  # a declared table
        stmt: PostgresqlInsert | SqliteInsert
        if db.session.get_bind().dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            stmt = postgresql_insert(table)
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(table)
        # Compiled once, the rows sent a thousand at a time (insertmanyvalues).
        inserted = db.session.execute(
            stmt.on_conflict_do_nothing(index_elements=["key"]).returning(table.c.key),
            new,
        )
        first.update(row[0] for row in inserted)
    return first


def _record_states(alerts: list[tuple[dict[str, Any], int]], now: datetime) -> None:
    """Keep each alert's latest state (``partner_alerts``): which alerts fire for a
    partner now, read when its tickets are matched with incidents. One upsert."""
    rows: dict[str, dict[str, Any]] = {}
    for alert, partner_id in alerts:
        fingerprint = (
            alert.get("fingerprint")
            or hashlib.sha256(repr(sorted(alert["labels"].items())).encode()).hexdigest()
        )
        rows[str(fingerprint).replace("\x00", "")[:64]] = {
            "partner_id": partner_id,
            "alertname": str(alert["labels"].get("alertname") or "alert").replace("\x00", "")[:200],
            "status": "resolved" if alert["status"] == "resolved" else "firing",
            "updated_at": now,
        }
    if not rows:
        return
    stmt = upsert_insert(cast("Table", PartnerAlert.__table__))
    upsert = stmt.on_conflict_do_update(
        index_elements=["fingerprint"],
        set_={
            name: stmt.excluded[name]
            for name in ("partner_id", "alertname", "status", "updated_at")
        },  # fmt: skip
    )
    ordered = sorted(rows.items())
    for start in range(0, len(ordered), CHUNK):
        db.session.execute(
            upsert,
            [{"fingerprint": key, **values} for key, values in ordered[start : start + CHUNK]],
        )


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
