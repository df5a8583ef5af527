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
import re
from dataclasses import dataclass
from typing import Any, Mapping

from ticketing.config import ConfigError

DEFAULT_ALERTMANAGER_URL = "http://127.0.0.1:9093"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


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


_KEYS = {"alertmanager_url", "worker", "poll_interval", "batch_size", "request_timeout",
         "initial_backoff", "max_backoff", "claim_timeout", "alert_ttl", "ticket_url"}


def parse_duration(value: Any) -> float:
    """``30`` / ``"30s"`` / ``"5m"`` -> seconds; raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("must be a duration (seconds or e.g. 30s, 5m)")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    raise ValueError("must be a duration (seconds or e.g. 30s, 5m)")


def load_settings(section: Mapping[str, Any] | None,
                  environ: Mapping[str, str] | None = None) -> OutboxSettings:
    """Validate the ``outbox`` section (missing keys take their defaults)."""
    environ = os.environ if environ is None else environ
    section = {} if section is None else section
    problems: list[str] = []
    if not isinstance(section, Mapping):
        raise OutboxConfigError(["outbox: must be a mapping"])
    for key in sorted(set(section) - _KEYS):
        problems.append(f"outbox.{key}: unknown setting")

    values: dict[str, Any] = {}

    urls = section.get("alertmanager_url")
    if urls in (None, ""):
        urls = environ.get("ALERTMANAGER_URL") or DEFAULT_ALERTMANAGER_URL
    url_list = [u.strip() for u in urls.split(",")] if isinstance(urls, str) else urls
    if not isinstance(url_list, list) or not url_list:
        problems.append("outbox.alertmanager_url: must be a URL or a list of URLs")
    else:
        for i, url in enumerate(url_list):
            where = "outbox.alertmanager_url" + (f"[{i}]" if len(url_list) > 1 else "")
            if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
                problems.append(f"{where}: must be an http(s) URL, got {url!r}")
        values["alertmanager_urls"] = tuple(str(u).rstrip("/") for u in url_list)

    if "worker" in section:
        if isinstance(section["worker"], bool):
            values["worker"] = section["worker"]
        else:
            problems.append("outbox.worker: must be true or false")

    if "batch_size" in section:
        size = section["batch_size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            problems.append("outbox.batch_size: must be an integer >= 1")
        else:
            values["batch_size"] = size

    for key in ("poll_interval", "request_timeout", "initial_backoff", "max_backoff",
                "claim_timeout", "alert_ttl"):
        if key not in section:
            continue
        try:
            seconds = parse_duration(section[key])
        except ValueError as exc:
            problems.append(f"outbox.{key}: {exc}")
            continue
        if seconds <= 0:
            problems.append(f"outbox.{key}: must be > 0")
            continue
        values[key] = seconds

    ticket_url = section.get("ticket_url")
    if ticket_url is not None:
        if not isinstance(ticket_url, str) or "{id}" not in ticket_url:
            problems.append("outbox.ticket_url: must be a URL template containing {id}")
        else:
            values["ticket_url"] = ticket_url

    if problems:
        raise OutboxConfigError(problems)
    settings = OutboxSettings(**values)

    # Relations between settings: these keep the delivery guarantees.
    if settings.max_backoff < settings.initial_backoff:
        problems.append("outbox.max_backoff: must be >= outbox.initial_backoff")
    posting = settings.request_timeout * len(settings.alertmanager_urls)
    if settings.claim_timeout <= 2 * posting:
        problems.append("outbox.claim_timeout: must be more than twice request_timeout "
                        "(per Alertmanager URL), or a slow post is claimed twice")
    if settings.alert_ttl <= settings.claim_timeout:
        problems.append("outbox.alert_ttl: must be > outbox.claim_timeout, or a message "
                        "re-posted after a crash could be notified twice")
    if problems:
        raise OutboxConfigError(problems)
    return settings
