"""Partner webhooks: partners' own signed endpoints for their alerts and ticket events.

    Prometheus rule (partner label) -> Alertmanager (grouped by partner,
    repeat_interval = cooldown) -> POST /internal/alertmanager/partner-alerts
    -> outbox rows (kind partner_webhook) -> signed POST to each endpoint

- :mod:`.api`: the partner API, ``/api/v1/webhooks`` (register, list, update,
  disable, delete, ping, delivery log);
- :mod:`.receiver`: Alertmanager's webhook, idempotent;
- :mod:`.events`: event shapes, fan-out into the outbox, ticket events
  (status changed, public staff reply) from :mod:`ticketing.signals`;
- :mod:`.delivery`: the outbox channel that posts them, with retries;
- :mod:`.dispatch`: the per-process pool, per-endpoint slots and circuits;
- :mod:`.signing`: HMAC-SHA256 signatures; :mod:`.guard`: the SSRF guard;
- :mod:`.settings`: the ``webhooks`` section of ticketing.yml.

docs/webhooks.md is the reference, with the snippet partners verify signatures with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask

from ticketing.webhooks import events
from ticketing.webhooks.settings import WebhooksConfigError, WebhooksSettings, load_settings

if TYPE_CHECKING:
    from ticketing.webhooks.dispatch import Dispatcher

__all__ = ["Webhooks", "WebhooksConfigError", "WebhooksSettings", "init_app"]


@dataclass
class Webhooks:
    """What ``init_app`` leaves in ``app.extensions["webhooks"]``."""

    settings: WebhooksSettings
    #: The process's delivery pool, slots and circuits (made at the first delivery).
    dispatcher: Dispatcher | None = None


def init_app(app: Flask) -> Webhooks | None:
    """Check the ``webhooks`` section; add the API, the receiver and the outbox channel.

    Needs the outbox (``ticketing.outbox.init_app``) first.
    """
    from ticketing.outbox import Channel

    outbox = app.extensions["outbox"]
    section = (app.config.get("TICKETING") or {}).get("webhooks")
    settings = load_settings(section, claim_timeout=outbox.settings.claim_timeout)
    if not settings.enabled:
        return None
    state = Webhooks(settings)
    app.extensions["webhooks"] = state

    from ticketing.webhooks import api, delivery, models, receiver  # noqa: F401  (models: the tables)

    smorest = app.extensions["ticketing_api"]
    smorest.spec.components.security_scheme(
        "AlertmanagerBearer",
        {
            "type": "http",
            "scheme": "bearer",
            "description": "the token in webhooks.receiver_token_file",
        },
    )
    smorest.register_blueprint(api.bp)
    smorest.register_blueprint(receiver.bp)
    events.connect()
    outbox.add_channel(
        Channel(
            "partner_webhooks",
            frozenset({events.KIND}),
            lambda max_batches: delivery.deliver_due(settings, max_batches),
            # The delivery thread does not wait for the posts (a hanging endpoint must
            # not hold the other channels or partners): the pool records them.
            lambda max_batches: delivery.deliver_due(settings, max_batches, wait=False),
        )
    )
    return state
