"""Telling partners: ``incident.*`` and ``maintenance.*`` events through their webhooks.

An event goes to every partner with an enabled endpoint that chose its type
(``ticketing.webhooks.events.queue_events``: outbox rows in the caller's
transaction, so a partner hears of a step exactly when it is committed, once).
Drafts are never told: :mod:`.incidents` calls this only for published incidents.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, has_request_context, url_for

from ticketing.db import db
from ticketing.outbox.store import isoformat
from ticketing.status.models import Incident, IncidentUpdate


def page_url() -> str | None:
    """The public status page's address (``status.page_url``, else the request's)."""
    state = current_app.extensions.get("status")
    if state is not None and state.settings.page_url:
        return str(state.settings.page_url)
    if has_request_context():
        return url_for("status_page.page", _external=True)
    return None


def incident_data(incident: Incident) -> dict[str, Any]:
    base = page_url()
    latest = db.session.execute(
        db.select(IncidentUpdate)
        .where(IncidentUpdate.incident_id == incident.id)
        .order_by(IncidentUpdate.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    return {
        "incident": {
            "id": incident.id,
            "name": incident.title,
            "status": incident.status,
            "impact": incident.impact,
            "components": list(incident.components),
            "shortlink": f"{base}#incident-{incident.id}" if base else None,
        },
        "update": {
            "status": latest.status,
            "body": latest.body,
            "created_at": isoformat(latest.created_at),
        }
        if latest is not None
        else None,
    }


SUBJECTS = {
    "incident.created": "Incident: {name}",
    "incident.updated": "Update ({status}): {name}",
    "incident.resolved": "Resolved: {name}",
    "maintenance.scheduled": "Scheduled maintenance: {name}",
    "maintenance.started": "Maintenance started: {name}",
    "maintenance.completed": "Maintenance completed: {name}",
}


def incident_event(incident: Incident, event_type: str) -> int:
    """Queue ``event_type`` about ``incident`` for every partner that wants it, and a
    mail to every confirmed subscriber of its components."""
    data = incident_data(incident)
    update = data["update"] or {}
    body = f"{incident.title}\n\n{update.get('status', incident.status)}: {update.get('body', '')}"
    if data["incident"]["shortlink"]:
        body += f"\n\n{data['incident']['shortlink']}"
    email(event_type, list(incident.components), data["incident"], body)
    return event(event_type, data)


def email(event_type: str, components: list[str], item: dict[str, Any], body: str) -> int:
    from ticketing.status import subscriptions

    state = current_app.extensions["status"]
    subject = SUBJECTS[event_type].format(
        name=item["name"], status=str(item.get("status", "")).replace("_", " ")
    )
    return subscriptions.notify(state.settings, components, subject, body)


def event(event_type: str, data: dict[str, Any]) -> int:
    """Queue ``event_type`` with ``data`` for every partner with an endpoint that chose it."""
    if "webhooks" not in current_app.extensions:
        return 0
    from ticketing.webhooks import events
    from ticketing.webhooks.models import WebhookEndpoint

    partner_ids = db.session.execute(
        db.select(WebhookEndpoint.partner_id)
        .where(WebhookEndpoint.enabled.is_(True))
        .distinct()
        .order_by(WebhookEndpoint.partner_id)
    ).scalars()
    return events.queue_events([(partner_id, event_type, data) for partner_id in partner_ids])
