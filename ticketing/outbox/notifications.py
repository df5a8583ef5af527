"""Which ticket events become notifications, and what they say.

Connected to :mod:`ticketing.signals`; each receiver runs inside the request's
transaction and queues an outbox message, so the notification exists exactly
when the change was committed.

- a ticket created: alertname ``SupportTicketCreated``, severity from the
  priority (critical -> critical, high -> warning, else info), team
  ``support``, identified by ``ticket``;
- a partner's reply on an assigned ticket: alertname ``SupportPartnerReply``,
  severity ``info``, team ``support``, identified by ``ticket`` and ``message``.

Alertmanager identifies an alert by its label set, so every notification
carries the id of what it is about (``ticket="42"``).  These are alert labels,
not metric labels: they never reach Prometheus' time series, so the rule
against ids as labels (docs/metrics.md) does not apply.  ``priority``,
``category``, ``partner`` and ``assignee`` are there for routing and grouping.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from ticketing import signals
from ticketing.outbox.store import enqueue

SEVERITY_BY_PRIORITY = {"critical": "critical", "high": "warning"}

#: What to do about each notification (docs/outbox.md), like the rules' runbook_url.
RUNBOOK_URL = "https://github.com/partnerwatch/partnerwatch/blob/main/docs/outbox.md#{}"

_TEXT_LIMIT = 1000


def _value(obj: Any) -> str | None:
    """An attribute value as plain text (enums give their value)."""
    if obj is None:
        return None
    return str(getattr(obj, "value", obj))


def _shorten(text: str | None, limit: int = _TEXT_LIMIT) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def severity_for_priority(priority: Any) -> str:
    return SEVERITY_BY_PRIORITY.get(_value(priority) or "", "info")


def _ticket_url(app: Flask, ticket_id: Any) -> str | None:
    template = app.extensions["outbox"].settings.ticket_url
    return template.format(id=ticket_id) if template else None


def _enabled(app: Any) -> bool:
    return isinstance(app, Flask) and "outbox" in app.extensions


def _flushed_id(obj: Any) -> Any:
    """The primary key of ``obj``, flushing the session first if it has none yet."""
    if getattr(obj, "id", None) is None:
        from ticketing.db import db

        db.session.flush()
    return obj.id


def on_ticket_created(app: Flask, ticket: Any = None, **_: Any) -> None:
    """A new ticket: tell the support team (on-call too when it is critical)."""
    if not _enabled(app) or ticket is None:
        return
    ticket_id = _flushed_id(ticket)
    priority = _value(ticket.priority)
    category = _value(getattr(ticket, "category", None))
    url = _ticket_url(app, ticket_id)
    enqueue(
        "ticket_created",
        f"ticket_created:{ticket_id}",
        labels={
            "alertname": "SupportTicketCreated",
            "severity": severity_for_priority(priority),
            "team": "support",
            "ticket": ticket_id,
            "priority": priority,
            "category": category,
            "partner": getattr(ticket, "partner_id", None),
        },
        annotations={
            "summary": f"New {priority} priority ticket #{ticket_id}: "
            f"{_shorten(ticket.title, 200)}",
            "description": _shorten(getattr(ticket, "description", "")),
            "ticket_url": url,
            "runbook_url": RUNBOOK_URL.format("supportticketcreated"),
        },
        starts_at=getattr(ticket, "created_at", None),
        generator_url=url,
    )


def _is_partner_message(message: Any) -> bool:
    sender = _value(getattr(message, "sender_type", None))
    return sender == "partner"


def _is_internal(message: Any) -> bool:
    return bool(getattr(message, "is_internal", False) or getattr(message, "internal", False))


def on_message_posted(app: Flask, ticket: Any = None, message: Any = None, **_: Any) -> None:
    """A partner replied on a ticket someone works on: tell the assignee."""
    if not _enabled(app) or ticket is None or message is None:
        return
    if not _is_partner_message(message) or _is_internal(message):
        return
    assignee = getattr(ticket, "assignee_id", None)
    if assignee is None:
        return  # nobody to tell yet: the ticket_created notification covers it
    ticket_id = _flushed_id(ticket)
    message_id = _flushed_id(message)
    url = _ticket_url(app, ticket_id)
    enqueue(
        "partner_reply",
        f"partner_reply:{message_id}",
        labels={
            "alertname": "SupportPartnerReply",
            "severity": "info",
            "team": "support",
            "ticket": ticket_id,
            "message": message_id,
            "assignee": assignee,
            "priority": _value(ticket.priority),
        },
        annotations={
            "summary": f"Partner replied on ticket #{ticket_id}: {_shorten(ticket.title, 200)}",
            "description": _shorten(
                getattr(message, "body", None) or getattr(message, "text", None)
            ),
            "ticket_url": url,
            "runbook_url": RUNBOOK_URL.format("supportpartnerreply"),
        },
        starts_at=getattr(message, "created_at", None),
        generator_url=url,
    )


def connect() -> None:
    """Connect the receivers (idempotent; they act only for apps with the outbox)."""
    signals.ticket_created.connect(on_ticket_created)
    signals.message_posted.connect(on_message_posted)
