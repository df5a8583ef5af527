"""The ``console`` section of ticketing.yml, validated into a frozen object.

    console:
      enabled: true
      secret_key_file: null       # null: $TICKETING_SECRET_KEY, else <instance>/console_secret_key
      session_lifetime: 8h        # a sign-in lasts this long (the cookie is refused after)
      idle_timeout: 30m           # a session unused this long is ended
      secure_cookie: auto         # auto: Secure when the request came over HTTPS; always; never
      poll_interval: 5s           # how often open pages ask for changes
      stale_after: 3              # polls missed before the page says it is stale
      due_soon: 1h                # the next SLA due time within this: highlighted
      page_size: 25               # tickets per queue page

Problems are reported one per line with their location, as for every section:
``console.secure_cookie: must be one of auto, always, never (got 'yes')``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import field_validator

from sharedconfig import AtLeast, Flag, NonEmptyStr, OneOf, PositiveDuration, Section
from ticketing.config import ConfigError

SECURE_COOKIE = ("auto", "always", "never")

# sharedconfig's OneOf and AtLeast build their pydantic types at run time, which a type
# checker cannot follow: it sees the type of the checked value.
if TYPE_CHECKING:
    SecureCookie = str
    Count = int
else:
    SecureCookie = OneOf(SECURE_COOKIE)
    Count = AtLeast(1)


class ConsoleConfigError(ConfigError):
    """An invalid ``console`` section; ``problems`` lists ``location: message`` lines."""


class ConsoleSettings(Section):
    error = ConsoleConfigError

    enabled: Flag = True
    secret_key_file: NonEmptyStr | None = None
    session_lifetime: PositiveDuration = 8 * 3600.0
    idle_timeout: PositiveDuration = 30 * 60.0
    secure_cookie: SecureCookie = "auto"
    poll_interval: PositiveDuration = 5.0
    stale_after: Count = 3
    due_soon: PositiveDuration = 3600.0
    page_size: Count = 25

    @field_validator("page_size", mode="after")
    @classmethod
    def _page_size(cls, value: int) -> int:
        if value > 200:
            raise ValueError("must be an integer <= 200")
        return value


def load_settings(section: Mapping[str, Any] | None) -> ConsoleSettings:
    """Validate the ``console`` section (missing keys take their defaults)."""
    return ConsoleSettings.load(section, "console")
