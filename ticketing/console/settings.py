"""The ``console`` section of ticketing.yml, validated into a frozen object.

    console:
      enabled: true
      secret_key_file: null       # null: $TICKETING_SECRET_KEY, else <instance>/console_secret_key
      session_lifetime: 8h        # a sign-in lasts this long (the cookie is refused after)
      secure_cookie: auto         # auto: Secure when the request came over HTTPS; always; never
      poll_interval: 5s           # how often open pages ask for changes
      stale_after: 3              # polls missed before the page says it is stale
      due_soon: 1h                # the next SLA due time within this: highlighted
      page_size: 25               # tickets per queue page

Problems are reported one per line with their location, as for every section:
``console.secure_cookie: must be one of auto, always, never (got 'yes')``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ticketing.config import Checker, ConfigError  # noqa: F401  (what the checks raise)

SECURE_COOKIE = ("auto", "always", "never")


@dataclass(frozen=True)
class ConsoleSettings:
    enabled: bool = True
    secret_key_file: str | None = None
    session_lifetime: float = 8 * 3600.0
    secure_cookie: str = "auto"
    poll_interval: float = 5.0
    stale_after: int = 3
    due_soon: float = 3600.0
    page_size: int = 25


_DURATIONS = ("session_lifetime", "poll_interval", "due_soon")
_KEYS = {"enabled", "secret_key_file", "secure_cookie", "stale_after", "page_size", *_DURATIONS}


def load_settings(section: Mapping[str, Any] | None) -> ConsoleSettings:
    """Validate the ``console`` section (missing keys take their defaults)."""
    c = Checker()
    section = c.section(section, "console", _KEYS)
    checked: dict[str, Any] = {}
    if section.get("enabled") is not None:
        checked["enabled"] = c.boolean(section["enabled"], "console.enabled")
    secret_file = section.get("secret_key_file")
    if secret_file is not None:
        if not isinstance(secret_file, str) or not secret_file.strip():
            c.fail("console.secret_key_file", "must be a file path")
        else:
            checked["secret_key_file"] = secret_file
    if section.get("secure_cookie") is not None:
        checked["secure_cookie"] = c.choice(section["secure_cookie"], SECURE_COOKIE,
                                            "console.secure_cookie")
    for key in _DURATIONS:
        if section.get(key) is not None:
            checked[key] = c.duration(section[key], f"console.{key}")
    if section.get("stale_after") is not None:
        checked["stale_after"] = c.integer(section["stale_after"], "console.stale_after", 1)
    if section.get("page_size") is not None:
        page_size = c.integer(section["page_size"], "console.page_size", 1)
        if page_size is not None and page_size > 200:
            c.fail("console.page_size", "must be an integer <= 200")
        checked["page_size"] = page_size
    c.raise_problems()
    return ConsoleSettings(**checked)
