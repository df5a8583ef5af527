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
      receiver_max_bytes: 16777216  # the receiver's request body limit (10,000 alerts)
      delivery:
        concurrency: 16           # posts in flight per process, at most
        per_endpoint: 2           # of which to one endpoint, at most
        circuit_failures: 5       # consecutive failures that open an endpoint's circuit
        circuit_open_for: 1m      # then a single probe (half-open) after this long

Problems are reported one per line with their location, like every section:
``webhooks.max_backoff: must be >= webhooks.initial_backoff``.
"""

from __future__ import annotations

import ipaddress
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import PlainValidator, PrivateAttr, ValidationInfo, field_validator, model_validator

from sharedconfig import (
    AtLeast,
    Flag,
    FromEnvironment,
    Invalid,
    NonEmptyStr,
    PositiveDuration,
    Section,
)
from ticketing.config import ConfigError


class WebhooksConfigError(ConfigError):
    """An invalid ``webhooks`` section; ``problems`` lists ``location: message`` lines."""


Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# sharedconfig's AtLeast and FromEnvironment build their pydantic types at run time,
# which a type checker cannot follow: it sees the type of the checked value.
if TYPE_CHECKING:
    Count = int
    TokenFile = str | None
else:
    Count = AtLeast(1)
    TokenFile = FromEnvironment(NonEmptyStr | None, "WEBHOOKS_RECEIVER_TOKEN_FILE", None)


def _networks(value: Any) -> tuple[Network, ...]:
    if value in (None, ()):
        return ()
    if not isinstance(value, (list, tuple)):
        raise ValueError("must be a list of addresses or networks")
    parsed, problems = [], {}
    for i, item in enumerate(value):
        try:
            parsed.append(
                item
                if isinstance(item, (ipaddress.IPv4Network, ipaddress.IPv6Network))
                else ipaddress.ip_network(str(item), strict=False)
            )
        except ValueError:
            problems[i] = f"must be an address or network such as 10.0.0.0/8 (got {item!r})"
    if problems:
        raise Invalid(problems)
    return tuple(parsed)


Networks = Annotated[tuple[Network, ...], PlainValidator(_networks)]


def _read_token(path: str) -> str:
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror or exc}): {path}") from None
    if len(token) < 16:
        raise ValueError("must hold a token of 16 characters or more")
    return token


class _TokenFile(str):
    """The path of the receiver's token file, carrying the token read from it when
    the path was checked: the file is read once, at start."""

    token: str | None = None


class DeliverySettings(Section):
    """``webhooks.delivery``: the per-process dispatcher (ticketing/webhooks/dispatch.py)."""

    error = WebhooksConfigError

    concurrency: Count = 16
    per_endpoint: Count = 2
    circuit_failures: Count = 5
    circuit_open_for: PositiveDuration = 60.0

    @model_validator(mode="after")
    def _fits(self) -> DeliverySettings:
        if self.per_endpoint > self.concurrency:
            raise Invalid({"per_endpoint": "must be <= webhooks.delivery.concurrency"})
        return self


class WebhooksSettings(Section):
    error = WebhooksConfigError

    enabled: Flag = True
    require_https: Flag = True
    allowed_networks: Networks = ()
    connect_timeout: PositiveDuration = 3.0
    read_timeout: PositiveDuration = 5.0
    max_response_bytes: Count = 4096
    batch_size: Count = 5
    initial_backoff: PositiveDuration = 10.0
    max_backoff: PositiveDuration = 3600.0
    disable_after: PositiveDuration = 3 * 86400.0
    max_endpoints: Count = 10
    duplicate_window: PositiveDuration = 60.0
    #: The file holding the receiver's bearer token (null: $WEBHOOKS_RECEIVER_TOKEN_FILE).
    receiver_token_file: TokenFile = None
    #: The receiver route's body limit (instead of api.max_json_bytes): 10,000 alerts.
    receiver_max_bytes: Count = 16 * 1024 * 1024
    delivery: DeliverySettings = DeliverySettings()
    _receiver_token: str | None = PrivateAttr(None)

    @property
    def receiver_token(self) -> str | None:
        """The receiver's bearer token, read from ``receiver_token_file`` at start;
        None: no receiver."""
        return self._receiver_token

    @field_validator("receiver_token_file", mode="after")
    @classmethod
    def _token_file(cls, path: str | None) -> str | None:
        if not path:
            return path
        checked = _TokenFile(path)
        # Read here, so that a missing or short token is reported with the other
        # problems of the section; kept for _checked, which does not read it again.
        checked.token = _read_token(path)
        return checked

    @model_validator(mode="after")
    def _checked(self, info: ValidationInfo) -> WebhooksSettings:
        problems = {}
        if self.max_backoff < self.initial_backoff:
            problems["max_backoff"] = "must be >= webhooks.initial_backoff"
        claim_timeout = (info.context or {}).get("claim_timeout")
        # One delivery must fit in a claim (the batch shrinks to fit several).
        if claim_timeout is not None and self.connect_timeout + self.read_timeout >= claim_timeout:
            problems["read_timeout"] = (
                "connect_timeout + read_timeout must be under "
                "outbox.claim_timeout, or a slow delivery is claimed "
                "and sent twice"
            )
        if problems:
            raise Invalid(problems)
        if isinstance(self.receiver_token_file, _TokenFile):
            self._receiver_token = self.receiver_token_file.token
        return self

    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt after ``attempts`` failed ones: exponential,
        capped, with "equal jitter" (between half and all of it), so endpoints that
        failed together are not all retried in the same second."""
        exponent = min(max(attempts - 1, 0), 60)
        delay = min(self.max_backoff, self.initial_backoff * 2.0**exponent)
        return delay / 2 + random.uniform(0, delay / 2)


def load_settings(
    section: Mapping[str, Any] | None,
    environ: Mapping[str, str] | None = None,
    claim_timeout: float | None = None,
) -> WebhooksSettings:
    """Validate the ``webhooks`` section; ``claim_timeout`` is the outbox's."""
    context = {
        "environ": os.environ if environ is None else environ,
        "claim_timeout": claim_timeout,
    }
    return WebhooksSettings.load(section, "webhooks", context)
