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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator

from sharedconfig import (
    AtLeast,
    Flag,
    FromEnvironment,
    HttpUrls,
    Invalid,
    PositiveDuration,
    Section,
)
from ticketing.config import ConfigError

DEFAULT_ALERTMANAGER_URL = "http://127.0.0.1:9093"

# sharedconfig's AtLeast and FromEnvironment build their pydantic types at run time,
# which a type checker cannot follow: it sees the type of the checked value.
if TYPE_CHECKING:
    AlertmanagerUrls = tuple[str, ...]
    BatchSize = int
else:
    AlertmanagerUrls = FromEnvironment(HttpUrls, "ALERTMANAGER_URL", DEFAULT_ALERTMANAGER_URL)
    BatchSize = AtLeast(1)


class OutboxConfigError(ConfigError):
    """An invalid ``outbox`` section; ``problems`` lists ``location: message`` lines."""


class OutboxSettings(Section):
    error = OutboxConfigError

    alertmanager_urls: AlertmanagerUrls = Field(
        None, alias="alertmanager_url", validate_default=True
    )
    worker: Flag = True
    poll_interval: PositiveDuration = 2.0
    batch_size: BatchSize = 50
    request_timeout: PositiveDuration = 5.0
    initial_backoff: PositiveDuration = 1.0
    max_backoff: PositiveDuration = 300.0
    claim_timeout: PositiveDuration = 60.0
    alert_ttl: PositiveDuration = 300.0
    ticket_url: str | None = None

    @field_validator("ticket_url", mode="plain")
    @classmethod
    def _ticket_url(cls, value: Any) -> str:
        if not isinstance(value, str) or "{id}" not in value:
            raise ValueError("must be a URL template containing {id}")
        return value

    @model_validator(mode="after")
    def _guarantees(self) -> OutboxSettings:
        """Relations between settings: these keep the delivery guarantees."""
        problems = {}
        if self.max_backoff < self.initial_backoff:
            problems["max_backoff"] = "must be >= outbox.initial_backoff"
        posting = self.request_timeout * len(self.alertmanager_urls)
        if self.claim_timeout <= 2 * posting:
            problems["claim_timeout"] = (
                "must be more than twice request_timeout (per "
                "Alertmanager URL), or a slow post is claimed twice"
            )
        if self.alert_ttl <= self.claim_timeout:
            problems["alert_ttl"] = (
                "must be > outbox.claim_timeout, or a message re-posted "
                "after a crash could be notified twice"
            )
        if problems:
            raise Invalid(problems)
        return self

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (1, 2, 4, ... capped)."""
        exponent = max(attempts - 1, 0)
        if exponent > 60:  # 2**60 seconds is past any cap; avoid huge floats
            return self.max_backoff
        return min(self.max_backoff, self.initial_backoff * 2.0**exponent)


def load_settings(
    section: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None
) -> OutboxSettings:
    """Validate the ``outbox`` section (missing keys take their defaults)."""
    return OutboxSettings.load(
        section, "outbox", {"environ": os.environ if environ is None else environ}
    )
