"""The Alertmanager receiver of platform alerts: each component's alerts, draft incidents.

Alertmanager's ``status-incidents`` receiver (alertmanager/alertmanager.yml)
posts every notification of alerts with a ``component`` label to
``POST /internal/alertmanager/incidents`` with a bearer token read from a file
(``status.receiver_token_file``, else the partner receiver's token: the same
Alertmanager calls the same service). For each alert of a configured component:

- a new firing alert opens a draft incident on its component, or joins the
  component's open incident; a draft reaches nobody until staff publish it
  (``status.auto_publish`` publishes the chosen severities at once);
- a resolved alert is noted on its incident, which staff resolve.

**Idempotent.** ``status_alerts`` keeps each alert's latest notice (by
fingerprint); the same notice again (Alertmanager's retry, the other
Alertmanager of a pair, a repeat) changes nothing. Two copies arriving at once
are serialised by the row (PostgreSQL) or the database's write lock (SQLite):
one opens the incident. The answer comes as soon as the transaction commits.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, cast

import marshmallow as ma
from flask import current_app
from sqlalchemy import or_, update

from ticketing.api.base import Blueprint, max_body_bytes
from ticketing.auth import authorize_alertmanager
from ticketing.db import db
from ticketing.models import utcnow
from ticketing.status import incidents, metrics
from ticketing.status.models import Incident, StatusAlert
from ticketing.status.settings import Component, StatusSettings
from ticketing.webhooks.schemas import NotificationSchema

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.dialects.postgresql import Insert as PostgresqlInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert

PATH = "/internal/alertmanager/incidents"
ALERTMANAGER: incidents.Actor = ("alertmanager", None)

bp = Blueprint(
    "status_receiver",
    __name__,
    url_prefix="/internal/alertmanager",
    description="Internal: Alertmanager's webhook for platform alerts with a component "
    "(bearer token, not a partner API key)",
)


class StatusResultSchema(ma.Schema):
    recorded = ma.fields.Integer(
        required=True, metadata={"description": "alerts whose new state was recorded"}
    )
    opened = ma.fields.Integer(required=True, metadata={"description": "draft incidents opened"})
    duplicates = ma.fields.Integer(
        required=True, metadata={"description": "alerts already recorded in this state"}
    )
    ignored = ma.fields.Integer(
        required=True, metadata={"description": "alerts of no configured component"}
    )


def _settings() -> StatusSettings:
    settings: StatusSettings = current_app.extensions["status"].settings
    return settings


def receiver_token() -> str | None:
    token = _settings().receiver_token
    if token is None and "webhooks" in current_app.extensions:
        token = current_app.extensions["webhooks"].settings.receiver_token
    return token


@bp.before_request
def _authorize() -> None:
    authorize_alertmanager(receiver_token(), "status.receiver_token_file")


@bp.route("/incidents", methods=["POST"])
@max_body_bytes(lambda: 16 * 1024 * 1024)
@bp.arguments(NotificationSchema)
@bp.response(200, StatusResultSchema)
@bp.doc(security=[{"AlertmanagerBearer": []}])
def incident_alerts(notification: dict[str, Any]) -> dict[str, int]:
    """Receive an Alertmanager notification of platform alerts (draft incidents)"""
    settings = _settings()
    counts = {"recorded": 0, "opened": 0, "duplicates": 0, "ignored": 0}
    for alert in notification["alerts"]:
        component = settings.component_for(alert["labels"])
        if component is None:
            counts["ignored"] += 1
            continue
        row = _new_notice(alert, component)
        if row is None:
            counts["duplicates"] += 1
            continue
        counts["recorded"] += 1
        if alert["status"] == "firing":
            counts["opened"] += _firing(settings, row, component, alert)
        elif row.incident_id is not None:
            incident = db.session.get(Incident, row.incident_id)
            if incident is not None:
                incidents.audit("alert_resolved", ALERTMANAGER, row.alertname, incident)
    for result, name in (("recorded", "recorded"), ("duplicate", "duplicates"),
                         ("ignored", "ignored")):  # fmt: skip
        if counts[name]:
            metrics.alert_notifications.labels(result=result).inc(counts[name])
    db.session.commit()
    return counts


def _clean(value: Any) -> str:
    """Text as stored: NUL characters (which PostgreSQL refuses in text) removed."""
    return str(value).replace("\x00", "")


def _fingerprint(alert: dict[str, Any]) -> str:
    given = alert.get("fingerprint")
    if given:
        return _clean(given)[:64]
    return hashlib.sha256(repr(sorted(alert["labels"].items())).encode()).hexdigest()


def _new_notice(alert: dict[str, Any], component: Component) -> StatusAlert | None:
    """Record the alert's notice; None when it is the one already recorded."""
    fingerprint = _fingerprint(alert)
    labels, annotations = alert["labels"], alert.get("annotations") or {}
    values = {
        "component": component.id,
        "alertname": _clean(labels.get("alertname") or "alert")[:200],
        "severity": _clean(labels.get("severity") or "")[:20] or None,
        "summary": _clean(annotations.get("summary") or "") or None,
        "status": alert["status"],
        "starts_at": _clean(alert["startsAt"]),
        "updated_at": utcnow(),
    }
    table = cast("Table", StatusAlert.__table__)
    stmt: PostgresqlInsert | SqliteInsert
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        stmt = postgresql_insert(table)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table)
    inserted = db.session.execute(
        stmt.values(fingerprint=fingerprint, **values)
        .on_conflict_do_nothing(index_elements=["fingerprint"])
        .returning(table.c.fingerprint)
    ).first()
    if inserted is None:
        changed = db.session.execute(
            update(StatusAlert)
            .where(
                StatusAlert.fingerprint == fingerprint,
                or_(
                    StatusAlert.status != alert["status"],
                    StatusAlert.starts_at != values["starts_at"],
                ),
            )
            .values(**values)
            .returning(StatusAlert.fingerprint),
            execution_options={"synchronize_session": False},
        ).first()
        if changed is None:
            return None
    row = db.session.get(StatusAlert, fingerprint, populate_existing=True)
    assert row is not None
    return row


def _firing(
    settings: StatusSettings, row: StatusAlert, component: Component, alert: dict[str, Any]
) -> int:
    """Link the alert to its component's open incident, or open a draft; 1 if opened."""
    open_incidents = db.session.execute(
        db.select(Incident).where(Incident.resolved_at.is_(None)).order_by(Incident.id)
    ).scalars()
    incident = next((i for i in open_incidents if component.id in i.components), None)
    if incident is not None:
        row.incident_id = incident.id
        incidents.audit("alert_firing", ALERTMANAGER, row.alertname, incident)
        return 0
    severity = row.severity or "warning"
    incident = incidents.open_incident(
        settings,
        f"{component.name}: {row.summary or row.alertname}",
        [component.id],
        incidents.SEVERITY_IMPACTS.get(severity, "minor"),
        f"We are investigating a problem with {component.name}.",
        ALERTMANAGER,
        source="alert",
    )
    row.incident_id = incident.id
    if severity in settings.auto_publish:
        incidents.publish(incident, incidents.SYSTEM)
    return 1
