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
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ticketing.config import ConfigError

DEFAULT_PROMETHEUS_URL = "http://127.0.0.1:9090"
DEFAULT_ALERTMANAGER_URL = "http://127.0.0.1:9093"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_URL = re.compile(r"^https?://[^/\s]+")


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


def parse_duration(value: Any) -> float:
    """``30`` / ``"30s"`` / ``"5m"`` / ``"500ms"`` -> seconds; raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("must be a duration (seconds or e.g. 30s, 5m)")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    raise ValueError("must be a duration (seconds or e.g. 30s, 5m)")


def load_settings(section: Mapping[str, Any] | None, known_queries: set[str] = frozenset(),
                  environ: Mapping[str, str] | None = None) -> LiveSettings:
    """Validate the ``live`` section (missing keys take their defaults).

    ``known_queries`` names the queries a ``queries`` override may replace.
    """
    environ = os.environ if environ is None else environ
    section = {} if section is None else section
    if not isinstance(section, Mapping):
        raise LiveConfigError(["live: must be a mapping"])
    problems = [f"live.{key}: unknown setting" for key in sorted(set(section) - _KEYS)]
    values: dict[str, Any] = {}

    if "enabled" in section:
        if isinstance(section["enabled"], bool):
            values["enabled"] = section["enabled"]
        else:
            problems.append("live.enabled: must be true or false")

    url = section.get("prometheus_url")
    if url in (None, ""):
        url = environ.get("PROMETHEUS_URL") or DEFAULT_PROMETHEUS_URL
    if not isinstance(url, str) or not _URL.match(url):
        problems.append(f"live.prometheus_url: must be an http(s) URL, got {url!r}")
    else:
        values["prometheus_url"] = url.rstrip("/")

    urls = section.get("alertmanager_url")
    if urls in (None, ""):
        urls = environ.get("ALERTMANAGER_URL") or DEFAULT_ALERTMANAGER_URL
    url_list = [u.strip() for u in urls.split(",")] if isinstance(urls, str) else urls
    if not isinstance(url_list, list) or not url_list:
        problems.append("live.alertmanager_url: must be a URL or a list of URLs")
    else:
        bad = [u for u in url_list if not isinstance(u, str) or not _URL.match(u)]
        for u in bad:
            problems.append(f"live.alertmanager_url: must be an http(s) URL, got {u!r}")
        if not bad:
            values["alertmanager_urls"] = tuple(u.rstrip("/") for u in url_list)

    for key in _DURATIONS:
        if key not in section:
            continue
        try:
            seconds = parse_duration(section[key])
        except ValueError as exc:
            problems.append(f"live.{key}: {exc}")
            continue
        if seconds <= 0:
            problems.append(f"live.{key}: must be > 0")
        else:
            values[key] = seconds

    if "query_offset" in section:
        try:
            offset = parse_duration(section["query_offset"])
        except ValueError as exc:
            problems.append(f"live.query_offset: {exc}")
        else:
            if offset < 0:
                problems.append("live.query_offset: must be >= 0")
            else:
                values["query_offset"] = offset

    for key, minimum in _COUNTS.items():
        if key not in section:
            continue
        count = section[key]
        if isinstance(count, bool) or not isinstance(count, int) or count < minimum:
            problems.append(f"live.{key}: must be an integer >= {minimum}")
        else:
            values[key] = count

    for key in _NAME_LISTS:
        if key not in section:
            continue
        names = section[key] if section[key] is not None else []
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            problems.append(f"live.{key}: must be a list of alert names")
        else:
            values[key] = frozenset(names)

    queries = section.get("queries") or {}
    if not isinstance(queries, Mapping):
        problems.append("live.queries: must be a mapping of query name to PromQL")
    else:
        for name, expr in queries.items():
            if name not in known_queries:
                problems.append(f"live.queries.{name}: unknown query "
                                f"(known: {', '.join(sorted(known_queries))})")
            elif not isinstance(expr, str) or not expr.strip():
                problems.append(f"live.queries.{name}: must be a PromQL expression")
        values["queries"] = dict(queries)

    if problems:
        raise LiveConfigError(problems)
    settings = LiveSettings(**values)
    # A snapshot should be computable within its interval even when a source hangs.
    if settings.query_timeout >= settings.interval:
        problems.append("live.query_timeout: must be < live.interval, or snapshots "
                        "fall behind while a source hangs")
    if problems:
        raise LiveConfigError(problems)
    return settings
