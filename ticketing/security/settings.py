"""The ``security`` and ``ratelimits`` configuration sections, checked.

Both sections are optional: every setting has a default (the same values the
shipped ``ticketing.yml`` documents). The extension reads them from
``app.config["TICKETING"]`` (the ticket service) or, in any other Flask app,
from ``app.config["SECURITY"]`` and ``app.config["RATELIMITS"]``. A problem
stops start-up with one line per problem naming its location:

    ConfigError: invalid ticketing configuration:
      ratelimits.limits.login: must be a rate such as "5/minute" (got 'often')
      security.failed_auth.threshold: must be an integer > 0 (got 0)
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from limits import parse_many

from ticketing.config import Checker, ConfigError  # noqa: F401  (what the checks raise)

from .patterns import PatternClass

#: The actions rate limits know about; a deployment may add its own names.
DEFAULT_LIMITS = {
    "login": "5/minute",
    "withdrawal": "3/minute",
    "api_call": "100/minute",
    "ticket_create": "20/minute",
}
DEFAULT_ROUTES = {"ticket_create": ["POST /api/v1/tickets"], "login": ["GET /ws/monitoring"]}
DEFAULT_HEADERS = ("User-Agent", "Referer")
DEFAULT_BLOCK = (PatternClass.PATH_TRAVERSAL, PatternClass.NULL_BYTE)
STRATEGIES = ("fixed-window", "moving-window", "sliding-window-counter")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ScanSettings:
    enabled: bool = True
    headers: tuple[str, ...] = DEFAULT_HEADERS
    max_decode_rounds: int = 3
    max_value_chars: int = 100_000


@dataclass(frozen=True)
class FailedAuthSettings:
    threshold: int = 5
    window_seconds: int = 300


@dataclass(frozen=True)
class SecuritySettings:
    trusted_proxies: tuple[IPNetwork, ...] = ()
    scan: ScanSettings = field(default_factory=ScanSettings)
    block: frozenset[PatternClass] = frozenset(DEFAULT_BLOCK)
    failed_auth: FailedAuthSettings = field(default_factory=FailedAuthSettings)
    events_api: bool = True


@dataclass(frozen=True)
class RateLimitSettings:
    enabled: bool = True
    storage_url: str = "memory://"
    strategy: str = "fixed-window"
    key_prefix: str = "partnerwatch"
    api_prefix: str = "/api/"
    limits: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    #: action -> ("METHOD /rule", ...): routes counted under that action.
    routes: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {k: tuple(v) for k, v in DEFAULT_ROUTES.items()})
    redis_timeout_seconds: float = 0.5


def check_security(raw: Any) -> SecuritySettings:
    c = Checker()
    settings = _security(c, raw)
    c.raise_problems()
    return settings


def check_ratelimits(raw: Any, redis_url: str | None = None) -> RateLimitSettings:
    c = Checker()
    settings = _ratelimits(c, raw, redis_url)
    c.raise_problems()
    return settings


def check_sections(sections: Mapping[str, Any], redis_url: str | None = None
                   ) -> tuple[SecuritySettings, RateLimitSettings]:
    """Both sections at once, so that every problem of both is reported together."""
    c = Checker()
    security = _security(c, sections.get("security"))
    ratelimits = _ratelimits(c, sections.get("ratelimits"), redis_url)
    c.raise_problems()
    return security, ratelimits


def _security(c: Checker, raw: Any) -> SecuritySettings:
    loc = "security"
    section = c.mapping(raw, loc, {"trusted_proxies", "scan", "block", "failed_auth",
                                   "events_api"}, optional=True)
    proxies = []
    for i, item in enumerate(c.string_list(section.get("trusted_proxies", []),
                                           f"{loc}.trusted_proxies")):
        try:
            proxies.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            c.fail(f"{loc}.trusted_proxies[{i}]",
                   f"must be an IP address or network such as 10.0.0.0/8 (got {item!r})")

    scan_raw = c.mapping(section.get("scan"), f"{loc}.scan",
                         {"enabled", "headers", "max_decode_rounds", "max_value_chars"},
                         optional=True)
    scan = ScanSettings(
        enabled=c.boolean(scan_raw.get("enabled"), f"{loc}.scan.enabled", True),
        headers=tuple(c.string_list(scan_raw.get("headers", list(DEFAULT_HEADERS)),
                                    f"{loc}.scan.headers")),
        max_decode_rounds=c.positive_int(scan_raw.get("max_decode_rounds"),
                                         f"{loc}.scan.max_decode_rounds", 3),
        max_value_chars=c.positive_int(scan_raw.get("max_value_chars"),
                                       f"{loc}.scan.max_value_chars", 100_000),
    )

    block = set()
    known = [p.value for p in PatternClass]
    for i, name in enumerate(c.string_list(section.get("block", [p.value for p in DEFAULT_BLOCK]),
                                           f"{loc}.block")):
        if c.choice(name, known, f"{loc}.block[{i}]") is not None:
            block.add(PatternClass(name))

    fa_raw = c.mapping(section.get("failed_auth"), f"{loc}.failed_auth",
                       {"threshold", "window_seconds"}, optional=True)
    failed_auth = FailedAuthSettings(
        threshold=c.positive_int(fa_raw.get("threshold"), f"{loc}.failed_auth.threshold", 5),
        window_seconds=c.positive_int(fa_raw.get("window_seconds"),
                                      f"{loc}.failed_auth.window_seconds", 300),
    )
    return SecuritySettings(
        trusted_proxies=tuple(proxies), scan=scan, block=frozenset(block),
        failed_auth=failed_auth,
        events_api=c.boolean(section.get("events_api"), f"{loc}.events_api", True))


def _ratelimits(c: Checker, raw: Any, redis_url: str | None) -> RateLimitSettings:
    loc = "ratelimits"
    section = c.mapping(raw, loc, {"enabled", "storage_url", "strategy", "key_prefix",
                                   "api_prefix", "limits", "routes", "redis_timeout_seconds"},
                        optional=True)
    storage_url = section.get("storage_url") or redis_url or os.environ.get("REDIS_URL") \
        or "memory://"
    if not isinstance(storage_url, str) or "://" not in storage_url:
        c.fail(f"{loc}.storage_url", f"must be a URL such as redis://host:6379/0 "
               f"(got {storage_url!r})")
        storage_url = "memory://"
    strategy = c.choice(section.get("strategy", "fixed-window"), STRATEGIES,
                        f"{loc}.strategy") or "fixed-window"
    key_prefix = section.get("key_prefix", "partnerwatch")
    if not isinstance(key_prefix, str) or not key_prefix:
        c.fail(f"{loc}.key_prefix", "must be a non-empty string")
        key_prefix = "partnerwatch"
    api_prefix = section.get("api_prefix", "/api/")
    if not isinstance(api_prefix, str) or not api_prefix.startswith("/"):
        c.fail(f"{loc}.api_prefix", f"must be a path starting with / (got {api_prefix!r})")
        api_prefix = "/api/"

    limits = dict(DEFAULT_LIMITS)
    limits_raw = c.mapping(section.get("limits") or {}, f"{loc}.limits",
                           expected="a mapping of action: rate")
    for action, value in limits_raw.items():
        where = f"{loc}.limits.{action}"
        if not isinstance(action, str) or not action.replace("_", "").isalnum():
            c.fail(where, "an action name is letters, digits and underscores")
            continue
        try:
            if not isinstance(value, str) or not parse_many(value):
                raise ValueError(value)
        except ValueError:
            c.fail(where, f'must be a rate such as "5/minute" or "100 per hour" (got {value!r})')
            continue
        limits[action] = value

    routes = {k: tuple(v) for k, v in DEFAULT_ROUTES.items()}
    routes_raw = c.mapping(section.get("routes") or {}, f"{loc}.routes",
                           expected='a mapping of action: ["METHOD /rule", ...]')
    for action, rules in routes_raw.items():
        where = f"{loc}.routes.{action}"
        if action not in limits:
            c.fail(where, f"no limit is configured for action {action!r}")
            continue
        checked = []
        for i, rule in enumerate(c.string_list(rules, where)):
            method, _, path = rule.partition(" ")
            if not method.isalpha() or not path.startswith("/"):
                c.fail(f"{where}[{i}]", f'must look like "POST /api/v1/tickets" (got {rule!r})')
            else:
                checked.append(f"{method.upper()} {path.strip()}")
        routes[action] = tuple(checked)

    return RateLimitSettings(
        enabled=c.boolean(section.get("enabled"), f"{loc}.enabled", True),
        storage_url=storage_url, strategy=strategy, key_prefix=key_prefix,
        api_prefix=api_prefix, limits=limits, routes=routes,
        redis_timeout_seconds=c.positive_number(section.get("redis_timeout_seconds"),
                                                f"{loc}.redis_timeout_seconds", 0.5))
