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
from dataclasses import dataclass, field
from typing import Any, Mapping

# parse_duration is part of this module's interface; the checks use it through Checker.
from ticketing.config import Checker, ConfigError, parse_duration  # noqa: F401

DEFAULT_PROMETHEUS_URL = "http://127.0.0.1:9090"
DEFAULT_ALERTMANAGER_URL = "http://127.0.0.1:9093"


class LiveConfigError(ConfigError):
    """An invalid ``live`` section; ``problems`` lists ``location: message`` lines."""


@dataclass(frozen=True)
class LiveSettings:
    enabled: bool = True
    interval: float = 5.0
    prometheus_url: str = DEFAULT_PROMETHEUS_URL
    alertmanager_urls: tuple[str, ...] = (DEFAULT_ALERTMANAGER_URL,)
    query_timeout: float = 3.0
    query_offset: float = 1.0
    max_clients: int = 200
    auth_timeout: float = 5.0
    reauth_interval: float = 300.0
    ping_interval: float = 20.0
    send_timeout: float = 10.0
    queue_size: int = 4
    send_buffer: int = 262144
    max_message_size: int = 4096
    max_alerts: int = 50
    hidden_alerts: frozenset[str] = frozenset({"Watchdog"})
    partner_alerts: frozenset[str] = frozenset()
    queries: Mapping[str, str] = field(default_factory=dict)


_DURATIONS = ("interval", "query_timeout", "auth_timeout", "reauth_interval", "ping_interval",
              "send_timeout")
_COUNTS = {"max_clients": 1, "queue_size": 1, "max_message_size": 64, "max_alerts": 0,
           "send_buffer": 0}
_NAME_LISTS = ("hidden_alerts", "partner_alerts")
_KEYS = {"enabled", "query_offset", "prometheus_url", "alertmanager_url", "queries",
         *_DURATIONS, *_COUNTS, *_NAME_LISTS}


def load_settings(section: Mapping[str, Any] | None, known_queries: set[str] = frozenset(),
                  environ: Mapping[str, str] | None = None) -> LiveSettings:
    """Validate the ``live`` section (missing keys take their defaults).

    ``known_queries`` names the queries a ``queries`` override may replace.
    """
    environ = os.environ if environ is None else environ
    c = Checker(LiveConfigError)
    section = c.section(section, "live", _KEYS)

    checked: dict[str, Any] = {}
    if "enabled" in section:
        checked["enabled"] = c.boolean(section["enabled"], "live.enabled")
    checked["prometheus_url"] = c.url(
        section.get("prometheus_url"), "live.prometheus_url",
        default=environ.get("PROMETHEUS_URL") or DEFAULT_PROMETHEUS_URL)
    checked["alertmanager_urls"] = c.urls(
        section.get("alertmanager_url"), "live.alertmanager_url",
        default=environ.get("ALERTMANAGER_URL") or DEFAULT_ALERTMANAGER_URL)
    for key in _DURATIONS:
        if key in section:
            checked[key] = c.duration(section[key], f"live.{key}")
    if "query_offset" in section:
        checked["query_offset"] = c.duration(section["query_offset"], "live.query_offset",
                                             allow_zero=True)
    for key, minimum in _COUNTS.items():
        if key in section:
            checked[key] = c.integer(section[key], f"live.{key}", minimum)

    for key in _NAME_LISTS:
        if key not in section:
            continue
        names = section[key] if section[key] is not None else []
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            c.fail(f"live.{key}", "must be a list of alert names")
        else:
            checked[key] = frozenset(names)

    queries = c.mapping(section.get("queries") or {}, "live.queries",
                        expected="a mapping of query name to PromQL")
    for name, expr in queries.items():
        if name not in known_queries:
            c.fail(f"live.queries.{name}",
                   f"unknown query (known: {', '.join(sorted(known_queries))})")
        elif not isinstance(expr, str) or not expr.strip():
            c.fail(f"live.queries.{name}", "must be a PromQL expression")
    checked["queries"] = dict(queries)

    c.raise_problems()
    settings = LiveSettings(**checked)
    # A snapshot should be computable within its interval even when a source hangs.
    if settings.query_timeout >= settings.interval:
        c.fail("live.query_timeout", "must be < live.interval, or snapshots "
               "fall behind while a source hangs")
    c.raise_problems()
    return settings
