"""Signals the ticket service sends, so other parts can react without coupling.

Senders emit these *inside* the request's database transaction, before commit:
a receiver that adds rows to ``db.session`` (the notification outbox, security
events) has them committed, or rolled back, together with the change itself.

    from ticketing import signals

    @signals.ticket_created.connect
    def on_ticket_created(app, ticket):
        ...

Signals and their keyword arguments:

- ``ticket_created(app, ticket)``: a partner created a ticket.
- ``message_posted(app, ticket, message)``: a message was added (partner or staff,
  public or internal note).
- ``ticket_changed(app, ticket, field, before, after, actor)``: status, priority,
  category or assignee changed.
- ``auth_failed(app, key_prefix, reason)``: a request carried a missing-looking,
  unknown or revoked API key (``key_prefix`` is the non-secret prefix or None).
- ``access_denied(app, actor, resource, resource_id)``: an authenticated caller
  asked for something that is not theirs (answered 404).

``auth_failed`` and ``access_denied`` accompany a request that fails, so the
service commits right after sending them (before answering 401/404): what their
receivers add to ``db.session`` is kept, although the request changes nothing
else. ``auth_failed`` reasons: ``malformed``, ``unknown``, ``revoked``,
``inactive`` (suspended partner, deactivated staff) and ``missing`` (no key on
an endpoint that needs one; requests to public endpoints send nothing).
"""

from __future__ import annotations

from typing import cast

from blinker import Namespace
from flask import Flask, current_app
from werkzeug.local import LocalProxy

_signals = Namespace()


def sender() -> Flask:
    """The current app itself, not its proxy: what these signals are sent from."""
    return cast("LocalProxy[Flask]", current_app)._get_current_object()


ticket_created = _signals.signal("ticket-created")
message_posted = _signals.signal("message-posted")
ticket_changed = _signals.signal("ticket-changed")
auth_failed = _signals.signal("auth-failed")
access_denied = _signals.signal("access-denied")
