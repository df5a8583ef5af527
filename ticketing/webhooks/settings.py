"""The ``webhooks`` section of ticketing.yml, validated into a frozen object.

    webhooks:
      enabled: true
      require_https: true         # endpoint URLs must be https://
      allowed_networks: []        # addresses allowed although private (tests, on-premises)
      connect_timeout: 3s
      read_timeout: 5s            # also the limit for reading the whole answer
      max_response_bytes: 4096    # of a partner's answer, the rest is not read
      batch_size: 5               # deliveries per claim, at most (fewer when 2 * batch *
                                  # (connect + read) would reach outbox.claim_timeout)
      initial_backoff: 10s        # retry after 10s, 20s, 40s, ... with jitter,
      max_backoff: 1h             # ... up to this
      disable_after: 3d           # an endpoint failing this long is disabled
      max_endpoints: 10           # per partner
      duplicate_window: 1m        # the same Alertmanager notification within this
                                  # long is one partner delivery (< repeat_interval)
      receiver_token_file: null   # the bearer token Alertmanager sends; null:
                                  # $WEBHOOKS_RECEIVER_TOKEN_FILE, else no receiver

Problems are reported one per line with their location, like every section:
``webhooks.max_backoff: must be >= webhooks.initial_backoff``.
"""
from __future__ import annotations

import ipaddress
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ticketing.config import Checker, ConfigError


class WebhooksConfigError(ConfigError):
    """An invalid ``webhooks`` section; ``problems`` lists ``location: message`` lines."""


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class WebhooksSettings:
    enabled: bool = True
    require_https: bool = True
    allowed_networks: tuple[Network, ...] = ()
    connect_timeout: float = 3.0
    read_timeout: float = 5.0
    max_response_bytes: int = 4096
    batch_size: int = 5
    initial_backoff: float = 10.0
    max_backoff: float = 3600.0
    disable_after: float = 3 * 86400.0
    max_endpoints: int = 10
    duplicate_window: float = 60.0
    receiver_token: str | None = None

    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt after ``attempts`` failed ones: exponential,
        capped, with "equal jitter" (between half and all of it), so endpoints that
        failed together are not all retried in the same second."""
        exponent = min(max(attempts - 1, 0), 60)
        delay = min(self.max_backoff, self.initial_backoff * 2 ** exponent)
        return delay / 2 + random.uniform(0, delay / 2)


_DURATIONS = ("connect_timeout", "read_timeout", "initial_backoff", "max_backoff",
              "disable_after", "duplicate_window")
_INTEGERS = ("max_response_bytes", "batch_size", "max_endpoints")
_KEYS = {"enabled", "require_https", "allowed_networks", "receiver_token_file",
         *_DURATIONS, *_INTEGERS}


def load_settings(section: Mapping[str, Any] | None,
                  environ: Mapping[str, str] | None = None,
                  claim_timeout: float | None = None) -> WebhooksSettings:
    """Validate the ``webhooks`` section; ``claim_timeout`` is the outbox's."""
    environ = os.environ if environ is None else environ
    c = Checker(WebhooksConfigError)
    section = c.section(section, "webhooks", _KEYS)
    checked: dict[str, Any] = {}
    for key in ("enabled", "require_https"):
        if key in section:
            checked[key] = c.boolean(section[key], f"webhooks.{key}")
    for key in _DURATIONS:
        if key in section:
            checked[key] = c.duration(section[key], f"webhooks.{key}")
    for key in _INTEGERS:
        if key in section:
            checked[key] = c.integer(section[key], f"webhooks.{key}", 1)

    networks = section.get("allowed_networks") or []
    if not isinstance(networks, list):
        c.fail("webhooks.allowed_networks", "must be a list of addresses or networks")
        networks = []
    parsed = []
    for i, value in enumerate(networks):
        try:
            parsed.append(ipaddress.ip_network(str(value), strict=False))
        except ValueError:
            c.fail(f"webhooks.allowed_networks[{i}]",
                   f"must be an address or network such as 10.0.0.0/8 (got {value!r})")
    checked["allowed_networks"] = tuple(parsed)

    token_file = section.get("receiver_token_file") or environ.get("WEBHOOKS_RECEIVER_TOKEN_FILE")
    if token_file:
        try:
            token = Path(str(token_file)).read_text().strip()
        except OSError as exc:
            c.fail("webhooks.receiver_token_file",
                   f"cannot be read ({exc.strerror or exc}): {token_file}")
        else:
            if len(token) < 16:
                c.fail("webhooks.receiver_token_file", "must hold a token of 16 characters or more")
            else:
                checked["receiver_token"] = token

    c.raise_problems()
    settings = WebhooksSettings(**checked)
    if settings.max_backoff < settings.initial_backoff:
        c.fail("webhooks.max_backoff", "must be >= webhooks.initial_backoff")
    if claim_timeout is not None:
        # One delivery must fit in a claim (the batch shrinks to fit several).
        if settings.connect_timeout + settings.read_timeout >= claim_timeout:
            c.fail("webhooks.read_timeout", "connect_timeout + read_timeout must be under "
                   "outbox.claim_timeout, or a slow delivery is claimed and sent twice")
    c.raise_problems()
    return settings
