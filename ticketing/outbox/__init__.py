"""The notification outbox: ticket and security events delivered to Alertmanager.

Notifications that must reach people (a new ticket, a partner's reply, a
severe security event) are written to the ``outbox_messages`` table in the same
transaction as the change that caused them, then posted to Alertmanager's
``/api/v2/alerts`` by a delivery worker, with retries and exponential backoff.
Alertmanager then routes, groups, inhibits and sends them like any alert from
Prometheus.  An Alertmanager outage or a ticketing restart loses nothing and
notifies nothing twice; docs/outbox.md explains why.

    from ticketing import outbox

    def create_app(...):
        ...
        outbox.init_app(app)

    # anywhere inside a request's transaction:
    outbox.enqueue("partner_reply", f"partner_reply:{message.id}",
                   labels={"alertname": "SupportPartnerReply", "severity": "info",
                           "team": "support", "ticket": ticket.id, "message": message.id},
                   annotations={"summary": "..."})

Ticket events are connected through :mod:`ticketing.signals` by ``init_app``;
see :mod:`ticketing.outbox.notifications`.  Operations: ``flask outbox
deliver --once`` and ``flask outbox status``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask, current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from ticketing.outbox import notifications
from ticketing.outbox.cli import outbox_cli
from ticketing.outbox.delivery import DeliveryReport, deliver_due
from ticketing.outbox.models import OutboxMessage
from ticketing.outbox.settings import OutboxConfigError, OutboxSettings, load_settings
from ticketing.outbox.store import ENQUEUED_FLAG, enqueue, enqueue_payload, pending_count
from ticketing.outbox.worker import DeliveryWorker

__all__ = [
    "Channel",
    "DeliveryReport",
    "Outbox",
    "OutboxConfigError",
    "OutboxMessage",
    "OutboxSettings",
    "deliver_due",
    "enqueue",
    "enqueue_payload",
    "init_app",
    "pending_count",
]


@dataclass(frozen=True)
class Channel:
    """A delivery channel other than Alertmanager: the outbox kinds it owns and
    ``deliver(max_batches)``, one pass over its due messages (claims, retries and
    backoff through :mod:`ticketing.outbox.store`), returning a DeliveryReport."""

    name: str
    kinds: frozenset[str]
    deliver: Callable[[int | None], DeliveryReport]
    #: What the delivery thread calls instead (None: ``deliver``): may return before
    #: its posts are done, e.g. when they run in a pool of its own.
    deliver_background: Callable[[int | None], DeliveryReport] | None = None


@dataclass
class Outbox:
    """What ``init_app`` leaves in ``app.extensions["outbox"]``."""

    settings: OutboxSettings
    worker: DeliveryWorker
    worker_enabled: bool
    channels: dict[str, Channel] = field(default_factory=dict)

    def add_channel(self, channel: Channel) -> None:
        """Deliver ``channel.kinds`` with ``channel.deliver`` instead of to Alertmanager."""
        self.channels[channel.name] = channel

    def deliver(self, max_batches: int | None = None, background: bool = False) -> DeliveryReport:
        """One delivery pass now over every channel (inside an application context);
        ``background`` (the delivery thread): channels need not wait for their posts."""
        owned = frozenset().union(*(c.kinds for c in self.channels.values()))
        report = deliver_due(self.settings, max_batches, exclude_kinds=owned)
        for channel in self.channels.values():
            run = (background and channel.deliver_background) or channel.deliver
            report.merge(run(max_batches))
        return report


def init_app(app: Flask) -> Outbox:
    """Validate the ``outbox`` section, connect the signals, add the CLI, start delivery.

    The delivery thread starts with the app (one per process), except under
    the ``flask`` command line, where it starts with the first request (``flask
    run``) or not at all (``flask outbox deliver``, ``flask db upgrade``), and
    in testing apps (``TESTING``), where tests deliver explicitly.
    """
    section = (app.config.get("TICKETING") or {}).get("outbox")
    settings = load_settings(section)
    worker = DeliveryWorker(app, settings)
    enabled = settings.worker and not app.testing
    state = Outbox(settings, worker, enabled)
    app.extensions["outbox"] = state
    notifications.connect()
    app.cli.add_command(outbox_cli)
    _install_commit_hook()
    if enabled:
        app.before_request(worker.ensure_running)
        if os.environ.get("FLASK_RUN_FROM_CLI") != "true":
            worker.ensure_running()
    return state


_hook_installed = False


def _install_commit_hook() -> None:
    """Wake this process's worker when a transaction that queued messages commits."""
    global _hook_installed
    if _hook_installed:
        return
    _hook_installed = True

    @event.listens_for(Session, "after_commit")
    def _wake_worker(session: Session) -> None:
        if not session.info.pop(ENQUEUED_FLAG, False) or not has_app_context():
            return
        state = current_app.extensions.get("outbox")
        if state is not None and state.worker.running:
            state.worker.wake()

    @event.listens_for(Session, "after_soft_rollback")
    def _forget(session: Session, previous_transaction: SessionTransaction) -> None:
        session.info.pop(ENQUEUED_FLAG, None)
