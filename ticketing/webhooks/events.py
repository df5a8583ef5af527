"""Partner events: what they look like, and how each becomes outbox rows.

An event is what a partner's endpoint receives (JSON, signed at delivery):

    {"id": "evt_0f3c...", "type": "alert.firing", "created_at": "2024-05-01T09:00:00.000Z",
     "partner_id": 7, "data": {...}}

Types, when they are sent, and their ``data``:

- ``alert.firing`` / ``alert.resolved``: Alertmanager notifies a partner-scoped
  alert (``partner`` label); ``alert``, ``severity``, ``summary``,
  ``description``, ``starts_at``, ``ends_at``;
- ``ticket.status_changed``: a ticket of the partner changes status (by staff
  or the partner); ``ticket`` (id, title, status, priority), ``from``, ``to``;
- ``ticket.staff_replied``: staff post a public message on the partner's
  ticket; ``ticket``, ``message`` (id, body, created_at);
- ``incident.created`` / ``incident.updated`` / ``incident.resolved``: staff
  publish a status page incident, post an update on it, resolve it (to every
  partner; docs/status.md); ``incident`` (id, name, status, impact,
  components, shortlink), ``update`` (status, body, created_at);
- ``maintenance.scheduled`` / ``maintenance.started`` / ``maintenance.completed``:
  staff plan a maintenance window, it starts, it ends (or is finished early or
  called off: ``status``); ``maintenance`` (id, name, body, status, components,
  scheduled_for, scheduled_until);
- ``ping``: the partner asks for a test delivery; ``endpoint_id``;
- ``endpoint.disabled``: one of the partner's endpoints was disabled after
  failing; ``endpoint_id``, ``url``, ``reason``.

:func:`queue_event` writes one outbox row (kind ``partner_webhook``) per
enabled endpoint of the partner that chose the type, inside the caller's
transaction.  Internal notes and other partners' data never reach it: every
event is built for one partner from that partner's own ticket.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Flask

from ticketing import signals
from ticketing.db import db
from ticketing.models import utcnow
from ticketing.outbox.store import drop_queued, enqueue_payload, enqueue_payloads, isoformat
from ticketing.webhooks.models import WebhookEndpoint

KIND = "partner_webhook"
ALERT_FIRING = "alert.firing"
ALERT_RESOLVED = "alert.resolved"
STATUS_CHANGED = "ticket.status_changed"
STAFF_REPLIED = "ticket.staff_replied"
PING = "ping"
ENDPOINT_DISABLED = "endpoint.disabled"
#: Types a partner may subscribe to (ping always reaches the endpoint asked).
#: The status page's events (ticketing/status/notify.py): incidents once published.
INCIDENT_CREATED = "incident.created"
INCIDENT_UPDATED = "incident.updated"
INCIDENT_RESOLVED = "incident.resolved"
MAINTENANCE_SCHEDULED = "maintenance.scheduled"
MAINTENANCE_STARTED = "maintenance.started"
MAINTENANCE_COMPLETED = "maintenance.completed"
EVENT_TYPES = (
    ALERT_FIRING,
    ALERT_RESOLVED,
    STATUS_CHANGED,
    STAFF_REPLIED,
    ENDPOINT_DISABLED,
    INCIDENT_CREATED,
    INCIDENT_UPDATED,
    INCIDENT_RESOLVED,
    MAINTENANCE_SCHEDULED,
    MAINTENANCE_STARTED,
    MAINTENANCE_COMPLETED,
)


def new_event(partner_id: int, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": event_type,
        "created_at": isoformat(utcnow()),
        "partner_id": partner_id,
        "data": data,
    }


def _dedup_prefix(endpoint_id: int) -> str:
    return f"webhook:{endpoint_id}:"


def enqueue_for(endpoint_id: int, event: dict[str, Any]) -> int | None:
    return enqueue_payload(
        KIND,
        f"{_dedup_prefix(endpoint_id)}{event['id']}",
        {"endpoint_id": endpoint_id, "event": event},
    )


def drop_queued_for(endpoint_id: int, reason: str) -> int:
    """Drop the events waiting for the endpoint (deleted or disabled), in the caller's
    transaction: they are never sent (their outbox rows keep ``reason``)."""
    return drop_queued(KIND, _dedup_prefix(endpoint_id), f"dropped: {reason}")


def queue_event(
    partner_id: int, event_type: str, data: dict[str, Any], exclude_endpoint: int | None = None
) -> dict[str, Any] | None:
    """Queue ``event_type`` for every enabled endpoint of the partner that chose it.

    Returns the event (the same id for all endpoints), or None when no endpoint wants it.
    """
    endpoints = db.session.execute(
        db.select(WebhookEndpoint.id, WebhookEndpoint.events)
        .where(WebhookEndpoint.partner_id == partner_id, WebhookEndpoint.enabled.is_(True))
        .order_by(WebhookEndpoint.id)
    ).all()
    wanted = [
        row.id
        for row in endpoints
        if event_type in (row.events or []) and row.id != exclude_endpoint
    ]
    if not wanted:
        return None
    event = new_event(partner_id, event_type, data)
    for endpoint_id in wanted:
        enqueue_for(endpoint_id, event)
    return event


def queue_events(items: list[tuple[int, str, dict[str, Any]]]) -> int:
    """:func:`queue_event` for many ``(partner_id, event_type, data)`` at once: one
    query for the partners' endpoints, the outbox rows in bulk inserts (in the
    caller's transaction). Returns how many outbox rows were queued."""
    partner_ids = sorted({partner_id for partner_id, _, _ in items})
    endpoints: dict[int, list[tuple[int, list[str]]]] = {}
    for start in range(0, len(partner_ids), 1000):
        rows = db.session.execute(
            db.select(WebhookEndpoint.id, WebhookEndpoint.partner_id, WebhookEndpoint.events)
            .where(
                WebhookEndpoint.partner_id.in_(partner_ids[start : start + 1000]),
                WebhookEndpoint.enabled.is_(True),
            )
            .order_by(WebhookEndpoint.id)
        ).all()
        for row in rows:
            endpoints.setdefault(row.partner_id, []).append((row.id, row.events or []))
    payloads: list[tuple[str, dict[str, Any]]] = []
    for partner_id, event_type, data in items:
        wanted = [id_ for id_, types in endpoints.get(partner_id, []) if event_type in types]
        if not wanted:
            continue
        event = new_event(partner_id, event_type, data)
        payloads.extend(
            (f"{_dedup_prefix(id_)}{event['id']}", {"endpoint_id": id_, "event": event})
            for id_ in wanted
        )
    return enqueue_payloads(KIND, payloads)


def _ticket(ticket: Any) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "title": ticket.title,
        "status": ticket.status,
        "priority": ticket.priority,
        "category": ticket.category,
    }


def _enabled(app: Any) -> bool:
    return isinstance(app, Flask) and "webhooks" in app.extensions


def on_ticket_changed(
    app: Flask,
    ticket: Any = None,
    field: str | None = None,
    before: Any = None,
    after: Any = None,
    **_: Any,
) -> None:
    if not _enabled(app) or ticket is None or field != "status":
        return
    queue_event(
        ticket.partner_id, STATUS_CHANGED, {"ticket": _ticket(ticket), "from": before, "to": after}
    )


def on_message_posted(app: Flask, ticket: Any = None, message: Any = None, **_: Any) -> None:
    if not _enabled(app) or ticket is None or message is None:
        return
    if message.sender_type != "staff" or message.internal:
        return  # partners hear only of public staff replies, never of internal notes
    if message.id is None:
        db.session.flush()
    queue_event(
        ticket.partner_id,
        STAFF_REPLIED,
        {
            "ticket": _ticket(ticket),
            "message": {
                "id": message.id,
                "body": message.body,
                "created_at": isoformat(message.created_at or utcnow()),
            },
        },
    )


def connect() -> None:
    signals.ticket_changed.connect(on_ticket_changed)
    signals.message_posted.connect(on_message_posted)
