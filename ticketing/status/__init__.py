"""The status page: components, incidents, maintenance, fed straight from Alertmanager.

    Prometheus rule (component label) -> Alertmanager route status-incidents
    -> POST /internal/alertmanager/incidents -> draft incident on the component
    -> staff publish and update it in the console (/console/incidents)
    -> /status, /api/v2/*.json (Statuspage's shapes), /status/feed.atom,
       incident.* partner webhooks (through the outbox)

- :mod:`.settings`: the ``status`` section of ticketing.yml (components, ...);
- :mod:`.models`: incidents, their updates, platform alerts, maintenance, audit;
- :mod:`.incidents`: the rules (open, publish, update, resolve; component states),
  no routes;
- :mod:`.receiver`: Alertmanager's webhook, idempotent;
- :mod:`.page`: the public page, its JSON and its feed;
- :mod:`.notify`: ``incident.*`` events to the partners' webhooks;
- :mod:`.linking`: how well a new ticket matches an open incident (no database);
- :mod:`.incident_tickets`: tickets linked to incidents, answered and resolved
  together, their SLA clocks paused meanwhile;
- :mod:`.staff_api`: the staff API for incidents and their tickets.

docs/status.md is the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask

from ticketing.status.settings import StatusConfigError, StatusSettings, load_settings

if TYPE_CHECKING:
    from ticketing.status.page import Model

__all__ = ["Status", "StatusConfigError", "StatusSettings", "init_app"]


@dataclass
class Status:
    """What ``init_app`` leaves in ``app.extensions["status"]``."""

    settings: StatusSettings
    #: (monotonic time, model) of the page, shared for ``status.cache_ttl``.
    cached: tuple[float, Model] | None = None


def init_app(app: Flask) -> Status | None:
    """Check the ``status`` section; add the receiver, the page and its JSON.

    After the webhooks extension (the receiver falls back to its token).
    """
    section = (app.config.get("TICKETING") or {}).get("status")
    settings = load_settings(section)
    if not settings.enabled:
        return None
    state = Status(settings)
    app.extensions["status"] = state

    # models: the tables; partner: its routes join page.bp before it is registered
    from ticketing.status import models, page, partner, receiver  # noqa: F401

    smorest = app.extensions["ticketing_api"]
    if "AlertmanagerBearer" not in smorest.spec.components.security_schemes:
        smorest.spec.components.security_scheme(
            "AlertmanagerBearer",
            {"type": "http", "scheme": "bearer", "description": "the receiver's token file"},
        )
    smorest.register_blueprint(receiver.bp)
    smorest.register_blueprint(partner.api)
    from ticketing import signals
    from ticketing.status import incident_tickets, staff_api

    smorest.register_blueprint(staff_api.bp)
    signals.ticket_created.connect(incident_tickets.on_ticket_created)
    app.register_blueprint(page.bp)
    page.document(app)
    from ticketing.outbox import Channel
    from ticketing.status import maintenance

    # Maintenance silences are outbox messages (retried); each delivery pass also
    # moves maintenance windows on by the clock.
    app.extensions["outbox"].add_channel(
        Channel("status_silences", frozenset({maintenance.KIND}), maintenance.deliver)
    )
    from ticketing.status import subscriptions

    app.extensions["outbox"].add_channel(
        Channel("status_email", frozenset({subscriptions.KIND}), subscriptions.deliver)
    )

    return state
