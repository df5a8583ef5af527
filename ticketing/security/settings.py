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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, cast

from limits import parse_many
from pydantic import Field, PlainValidator, ValidationInfo, field_validator

from sharedconfig import (
    Flag,
    FromEnvironment,
    NonEmptyStr,
    OneOf,
    PositiveInt,
    PositiveNumber,
    Section,
    Strings,
    listed,
    mapping,
)
from ticketing import config
from ticketing.config import ConfigError  # noqa: F401  (what the checks raise)
from ticketing.security.patterns import PatternClass

#: The actions rate limits know about; a deployment may add its own names.
DEFAULT_LIMITS = {
    "login": "5/minute",
    "withdrawal": "3/minute",
    "api_call": "100/minute",
    "ticket_create": "20/minute",
}
DEFAULT_ROUTES: dict[str, tuple[str, ...]] = {
    "ticket_create": ("POST /api/v1/tickets",),
    "login": ("GET /ws/monitoring",),
}
DEFAULT_HEADERS = ("User-Agent", "Referer")
DEFAULT_BLOCK = (PatternClass.PATH_TRAVERSAL, PatternClass.NULL_BYTE)
STRATEGIES = ("fixed-window", "moving-window", "sliding-window-counter")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# sharedconfig's OneOf and FromEnvironment build their pydantic types at run time,
# which a type checker cannot follow: it sees the type of the checked value.
if TYPE_CHECKING:
    BlockedClass = PatternClass
    StorageUrl = str
    Strategy = str
else:
    BlockedClass = OneOf([p.value for p in PatternClass], PatternClass)
    StorageUrl = FromEnvironment(str, "REDIS_URL", "memory://")
    Strategy = OneOf(STRATEGIES)


# ------------------------------------------------------------------ security


def _network(value: Any) -> IPNetwork:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string (got {value!r})")
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(
            f"must be an IP address or network such as 10.0.0.0/8 (got {value.strip()!r})"
        ) from None


class ScanSettings(Section):
    enabled: Flag = True
    headers: Strings = DEFAULT_HEADERS
    max_decode_rounds: PositiveInt = 3
    max_value_chars: PositiveInt = 100_000


class FailedAuthSettings(Section):
    threshold: PositiveInt = 5
    window_seconds: PositiveInt = 300


def _ipv6_prefix(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 128:
        raise ValueError(f"must be an integer from 1 to 128 (got {value!r})")
    return value


class EventSettings(Section):
    #: IPv6 client addresses fold into one row per network of this prefix length
    #: (a client holds a whole /64; 128: per address).
    ipv6_prefix: Annotated[int, PlainValidator(_ipv6_prefix)] = 64
    #: Rows per event type and UTC day; further sources fold into one overflow row.
    max_rows_per_type_per_day: PositiveInt = 1000


class SecuritySettings(Section):
    trusted_proxies: Annotated[tuple[Annotated[Any, PlainValidator(_network)], ...], listed()] = ()
    scan: ScanSettings = ScanSettings()
    block: Annotated[frozenset[BlockedClass], listed()] = frozenset(DEFAULT_BLOCK)
    failed_auth: FailedAuthSettings = FailedAuthSettings()
    events: EventSettings = EventSettings()
    events_api: Flag = True


# ------------------------------------------------------------------ ratelimits


def _action(value: Any) -> str:
    if not isinstance(value, str) or not value.replace("_", "").isalnum():
        raise ValueError("an action name is letters, digits and underscores")
    return value


def _rate(value: Any) -> str:
    try:
        if not isinstance(value, str) or not parse_many(value):
            raise ValueError(value)
    except ValueError:
        raise ValueError(
            f'must be a rate such as "5/minute" or "100 per hour" (got {value!r})'
        ) from None
    return value


def _route(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string (got {value!r})")
    method, _, path = value.strip().partition(" ")
    if not method.isalpha() or not path.startswith("/"):
        raise ValueError(f'must look like "POST /api/v1/tickets" (got {value.strip()!r})')
    return f"{method.upper()} {path.strip()}"


def _limited_action(value: Any, info: ValidationInfo) -> Any:
    """A key of ``routes``: an action that ``limits`` (valid or not, or the defaults) has."""
    limits = info.data.get("limits", DEFAULT_LIMITS)  # absent: the limits were invalid
    if value not in limits:
        raise ValueError(f"no limit is configured for action {value!r}")
    return value


Action = Annotated[str, PlainValidator(_action)]
Routes = Annotated[tuple[Annotated[str, PlainValidator(_route)], ...], listed()]


class RateLimitSettings(Section):
    enabled: Flag = True
    #: Not set: ``$REDIS_URL`` (or the app's ``REDIS_URL``), else process memory.
    storage_url: StorageUrl = Field(None, validate_default=True)
    strategy: Strategy = "fixed-window"
    key_prefix: NonEmptyStr = "partnerwatch"
    api_prefix: str = "/api/"
    #: action -> rate; the file's are added to (and override) :data:`DEFAULT_LIMITS`.
    limits: Annotated[
        dict[Action, Annotated[str, PlainValidator(_rate)]], mapping("a mapping of action: rate")
    ] = DEFAULT_LIMITS
    #: action -> ("METHOD /rule", ...): routes counted under that action (added to the defaults).
    routes: Annotated[
        dict[Annotated[str, PlainValidator(_limited_action)], Routes],
        mapping('a mapping of action: ["METHOD /rule", ...]'),
    ] = DEFAULT_ROUTES
    redis_timeout_seconds: PositiveNumber = 0.5

    @field_validator("storage_url", mode="after")
    @classmethod
    def _storage(cls, url: Any) -> str:
        if not isinstance(url, str) or "://" not in url:
            raise ValueError(f"must be a URL such as redis://host:6379/0 (got {url!r})")
        return url

    @field_validator("api_prefix", mode="plain")
    @classmethod
    def _api_prefix(cls, value: Any) -> str:
        if not isinstance(value, str) or not value.startswith("/"):
            raise ValueError(f"must be a path starting with / (got {value!r})")
        return value

    @field_validator("limits", mode="after")
    @classmethod
    def _with_default_limits(cls, limits: dict[str, str]) -> dict[str, str]:
        return {**DEFAULT_LIMITS, **limits}

    @field_validator("routes", mode="after")
    @classmethod
    def _with_default_routes(cls, routes: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        return {**DEFAULT_ROUTES, **routes}


def check_sections(
    sections: Mapping[str, Any], redis_url: str | None = None
) -> tuple[SecuritySettings, RateLimitSettings]:
    """Both sections at once, so that every problem of both is reported together.

    ``redis_url`` (the app's ``REDIS_URL``) is the rate limits' storage when
    ``ratelimits.storage_url`` is not set; without it, ``$REDIS_URL``.
    """
    environ = {"REDIS_URL": redis_url or os.environ.get("REDIS_URL") or ""}
    checked = config.check_sections(sections, ("security", "ratelimits"), {"environ": environ})
    # The models SECTIONS names for these two sections.
    return (
        cast(SecuritySettings, checked["security"]),
        cast(RateLimitSettings, checked["ratelimits"]),
    )
