"""The ``live`` section of ticketing.yml, validated into a frozen object.

    live:
      enabled: true
      interval: 5s             # one snapshot per interval, shared by every client
      prometheus_url: null     # null: $PROMETHEUS_URL, else http://127.0.0.1:9090
      alertmanager_url: null   # null: $ALERTMANAGER_URL, else http://127.0.0.1:9093;
                               # a list (or comma-separated) is tried in order
      query_timeout: 3s        # HTTP timeout of one Prometheus / Alertmanager request
      query_offset: 1s         # queries read Prometheus as of this long ago (samples
                               # being written are not missed; results are repeatable)
      max_clients: 200         # connections per process (keep below gunicorn `threads`)
      auth_timeout: 5s         # time a client without X-API-Key has to send its auth message
      reauth_interval: 5m      # a connected client's key is checked again this often
      ping_interval: 20s       # heartbeat; no pong by the next ping closes the connection
      send_timeout: 10s        # a frame not written within this drops the client
      queue_size: 4            # snapshots waiting per client before it counts as too slow
      send_buffer: 262144      # bytes of kernel send buffer per client (0: the OS's
                               # autotuned default, which may grow to megabytes)
      max_message_size: 4096   # bytes; a larger client message closes with 1009
      max_alerts: 50           # alerts listed in a snapshot (the count is always exact)
      hidden_alerts: [Watchdog]        # never shown (always-firing heartbeats)
      partner_alerts: [PlatformApiDown, ...]  # the only alerts partners see
      queries: {}              # PromQL overrides by name (see ticketing/live/snapshot.py)

Durations are seconds (a number) or strings such as ``500ms``, ``30s``, ``5m``.
Problems are reported one per line with their location, like the other sections:
``live.ping_interval: must be > 0``.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, PlainValidator, ValidationInfo, field_validator, model_validator

from sharedconfig import (
    AtLeast,
    Flag,
    FromEnvironment,
    HttpUrl,
    HttpUrls,
    Invalid,
    NonNegativeDuration,
    PositiveDuration,
    Section,
    mapping,
)
from ticketing.config import ConfigError

DEFAULT_PROMETHEUS_URL = "http://127.0.0.1:9090"
DEFAULT_ALERTMANAGER_URL = "http://127.0.0.1:9093"

# sharedconfig's AtLeast and FromEnvironment build their pydantic types at run time,
# which a type checker cannot follow: it sees the type of the checked value.
if TYPE_CHECKING:
    PrometheusUrl = str
    AlertmanagerUrls = tuple[str, ...]
    Count = int
    MessageSize = int
    NonNegativeInt = int
else:
    PrometheusUrl = FromEnvironment(HttpUrl, "PROMETHEUS_URL", DEFAULT_PROMETHEUS_URL)
    AlertmanagerUrls = FromEnvironment(HttpUrls, "ALERTMANAGER_URL", DEFAULT_ALERTMANAGER_URL)
    Count = AtLeast(1)
    MessageSize = AtLeast(64)
    NonNegativeInt = AtLeast(0)


class LiveConfigError(ConfigError):
    """An invalid ``live`` section; ``problems`` lists ``location: message`` lines."""


def _alert_names(value: Any) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(n, str) and n for n in value):
        raise ValueError("must be a list of alert names")
    return frozenset(value)


AlertNames = Annotated[frozenset[str], PlainValidator(_alert_names)]


class LiveSettings(Section):
    error = LiveConfigError

    enabled: Flag = True
    prometheus_url: PrometheusUrl = Field(None, validate_default=True)
    alertmanager_urls: AlertmanagerUrls = Field(
        None, alias="alertmanager_url", validate_default=True
    )
    interval: PositiveDuration = 5.0
    query_timeout: PositiveDuration = 3.0
    auth_timeout: PositiveDuration = 5.0
    reauth_interval: PositiveDuration = 300.0
    ping_interval: PositiveDuration = 20.0
    send_timeout: PositiveDuration = 10.0
    query_offset: NonNegativeDuration = 1.0
    max_clients: Count = 200
    queue_size: Count = 4
    max_message_size: MessageSize = 4096
    max_alerts: NonNegativeInt = 50
    send_buffer: NonNegativeInt = 262144
    hidden_alerts: AlertNames = frozenset({"Watchdog"})
    partner_alerts: AlertNames = frozenset()
    #: PromQL overrides by query name (the names of ticketing/live/snapshot.py).
    queries: Annotated[dict[str, str], mapping("a mapping of query name to PromQL")] = {}

    @field_validator("queries", mode="after")
    @classmethod
    def _queries(cls, queries: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        known: Collection[str] | None = (info.context or {}).get("known_queries")
        if known is None:
            from ticketing.live.snapshot import QUERIES

            known = QUERIES
        problems = {}
        for name, expr in queries.items():
            if name not in known:
                problems[name] = f"unknown query (known: {', '.join(sorted(known))})"
            elif not expr.strip():
                problems[name] = "must be a PromQL expression"
        if problems:
            raise Invalid(problems)
        return queries

    @model_validator(mode="after")
    def _in_time(self) -> LiveSettings:
        """A snapshot should be computable within its interval even when a source hangs."""
        if self.query_timeout >= self.interval:
            raise Invalid(
                {
                    "query_timeout": "must be < live.interval, or snapshots fall "
                    "behind while a source hangs"
                }
            )
        return self


def load_settings(
    section: Mapping[str, Any] | None,
    known_queries: set[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> LiveSettings:
    """Validate the ``live`` section (missing keys take their defaults).

    ``known_queries`` names the queries a ``queries`` override may replace
    (default: those of :mod:`ticketing.live.snapshot`).
    """
    context: dict[str, Any] = {"environ": os.environ if environ is None else environ}
    if known_queries is not None:
        context["known_queries"] = known_queries
    return LiveSettings.load(section, "live", context)
