"""The ``outbox`` section of ticketing.yml, validated into a frozen object.

    outbox:
      alertmanager_url: null      # null: $ALERTMANAGER_URL, else http://127.0.0.1:9093;
                                  # a list posts to every replica of an HA pair
      worker: true                # a delivery thread in each ticketing process
      poll_interval: 2s           # how often the worker looks for due messages
      batch_size: 50              # messages claimed and posted per request
      request_timeout: 5s         # HTTP timeout of one post
      initial_backoff: 1s         # wait after the first failed attempt ...
      max_backoff: 5m             # ... doubling up to this
      claim_timeout: 1m           # a claimed message is retried after this if its
                                  # deliverer died before recording the outcome
      alert_ttl: 5m               # endsAt = time of posting + alert_ttl
      ticket_url: null            # e.g. https://support.example.com/tickets/{id}

Durations are seconds (a number) or Prometheus-style strings (``500ms``,
``30s``, ``5m``, ``1h``).  Problems are reported one per line with their
location: ``outbox.max_backoff: must be >= outbox.initial_backoff``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

# parse_duration is part of this module's interface; the checks use it through Checker.
from ticketing.config import Checker, ConfigError, parse_duration  # noqa: F401

DEFAULT_ALERTMANAGER_URL = "http://127.0.0.1:9093"


class OutboxConfigError(ConfigError):
    """An invalid ``outbox`` section; ``problems`` lists ``location: message`` lines."""


@dataclass(frozen=True)
class OutboxSettings:
    alertmanager_urls: tuple[str, ...] = (DEFAULT_ALERTMANAGER_URL,)
    worker: bool = True
    poll_interval: float = 2.0
    batch_size: int = 50
    request_timeout: float = 5.0
    initial_backoff: float = 1.0
    max_backoff: float = 300.0
    claim_timeout: float = 60.0
    alert_ttl: float = 300.0
    ticket_url: str | None = None

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (1, 2, 4, ... capped)."""
        exponent = max(attempts - 1, 0)
        if exponent > 60:  # 2**60 seconds is past any cap; avoid huge floats
            return self.max_backoff
        return min(self.max_backoff, self.initial_backoff * 2 ** exponent)


_DURATIONS = ("poll_interval", "request_timeout", "initial_backoff", "max_backoff",
              "claim_timeout", "alert_ttl")
_KEYS = {"alertmanager_url", "worker", "batch_size", "ticket_url", *_DURATIONS}


def load_settings(section: Mapping[str, Any] | None,
                  environ: Mapping[str, str] | None = None) -> OutboxSettings:
    """Validate the ``outbox`` section (missing keys take their defaults)."""
    environ = os.environ if environ is None else environ
    c = Checker(OutboxConfigError)
    section = c.section(section, "outbox", _KEYS)

    checked: dict[str, Any] = {
        "alertmanager_urls": c.urls(
            section.get("alertmanager_url"), "outbox.alertmanager_url",
            default=environ.get("ALERTMANAGER_URL") or DEFAULT_ALERTMANAGER_URL)}
    if "worker" in section:
        checked["worker"] = c.boolean(section["worker"], "outbox.worker")
    if "batch_size" in section:
        checked["batch_size"] = c.integer(section["batch_size"], "outbox.batch_size", 1)
    for key in _DURATIONS:
        if key in section:
            checked[key] = c.duration(section[key], f"outbox.{key}")

    ticket_url = section.get("ticket_url")
    if ticket_url is not None:
        if not isinstance(ticket_url, str) or "{id}" not in ticket_url:
            c.fail("outbox.ticket_url", "must be a URL template containing {id}")
        else:
            checked["ticket_url"] = ticket_url

    c.raise_problems()
    settings = OutboxSettings(**checked)

    # Relations between settings: these keep the delivery guarantees.
    if settings.max_backoff < settings.initial_backoff:
        c.fail("outbox.max_backoff", "must be >= outbox.initial_backoff")
    posting = settings.request_timeout * len(settings.alertmanager_urls)
    if settings.claim_timeout <= 2 * posting:
        c.fail("outbox.claim_timeout", "must be more than twice request_timeout "
               "(per Alertmanager URL), or a slow post is claimed twice")
    if settings.alert_ttl <= settings.claim_timeout:
        c.fail("outbox.alert_ttl", "must be > outbox.claim_timeout, or a message "
               "re-posted after a crash could be notified twice")
    c.raise_problems()
    return settings
