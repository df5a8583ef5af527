"""The ``status`` section of ticketing.yml, validated into a frozen object.

    status:
      enabled: true
      page_name: Partnerwatch platform status
      page_url: null              # https://status.example.com/status (null: as requested)
      components:                 # what partners see, in this order
        - id: api                 # also the `component` label that maps alerts to it
          name: Platform API
          description: The partner API and its database
          match: {}               # more labels an alert must carry (default: none)
      severity_states:            # a firing alert's severity -> its component's state
        critical: major_outage
        warning: degraded_performance
      auto_publish: []            # severities whose draft incidents publish themselves
      receiver_token_file: null   # null: $STATUS_RECEIVER_TOKEN_FILE, else the
                                  # webhooks receiver's token (same Alertmanager)
      history_days: 90            # days of history per component on the page
      poll_interval: 5s           # how often an open page asks for changes
      cache_ttl: 1s               # the page's model is shared this long per process
      email:                      # subscriptions by email (double opt-in)
        smtp_server: null         # host:port; null: $STATUS_SMTP_SERVER, else none
        sender: status@partnerwatch.example
        starttls: false
        username: null
        password_file: null       # null: $STATUS_SMTP_PASSWORD_FILE
        timeout: 10s
        resend_after: 1h          # confirmation requests to one address, at most

Problems are reported one per line with their location:
``status.components[1].id: must be unique (api is listed twice)``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, PrivateAttr, field_validator, model_validator

from sharedconfig import (
    AtLeast,
    Flag,
    FromEnvironment,
    Invalid,
    NonEmptyStr,
    NonNegativeDuration,
    OneOf,
    PositiveDuration,
    PositiveNumber,
    Section,
    listed,
    mapping,
)
from ticketing.config import ConfigError
from ticketing.desk.choices import CATEGORIES

#: A component's states, best first (Statuspage's names).
STATES = ("operational", "under_maintenance", "degraded_performance", "partial_outage",
          "major_outage")  # fmt: skip
#: Incident impacts, least first (Statuspage's names).
IMPACTS = ("none", "minor", "major", "critical")
SEVERITIES = ("critical", "warning", "info")

_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


class StatusConfigError(ConfigError):
    """An invalid ``status`` section; ``problems`` lists ``location: message`` lines."""


if TYPE_CHECKING:
    State = str
    Severity = str
    Category = str
    Days = int
    TokenFile = str | None
else:
    State = OneOf(STATES)
    Severity = OneOf(SEVERITIES)
    Category = OneOf(CATEGORIES)

    Days = AtLeast(1)
    TokenFile = FromEnvironment(NonEmptyStr | None, "STATUS_RECEIVER_TOKEN_FILE", None)


class Component(Section):
    """One part of the platform on the status page, and the alerts that speak for it."""

    error = StatusConfigError

    id: NonEmptyStr
    name: NonEmptyStr
    description: str = ""
    #: Labels an alert must carry besides ``component: <id>``.
    match: Annotated[dict[str, str], mapping("a mapping of label name to value")] = {}
    #: Linking tickets to this component's incidents (``linking.py``): the ticket
    #: categories that speak of it, words that name it or its failures (any
    #: language; matched as whole words, or inside the text for CJK), and the
    #: partner alerts that fire for a partner it fails.
    categories: Annotated[tuple[Category, ...], listed("a list of ticket categories")] = ()
    keywords: Annotated[tuple[NonEmptyStr, ...], listed("a list of words")] = ()
    partner_alerts: Annotated[tuple[NonEmptyStr, ...], listed("a list of alert names")] = ()

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.fullmatch(value):
            raise ValueError(
                "must be 1-40 lower-case letters, digits, '-' or '_' (it is an alert label value)"
            )
        return value

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an alert with ``labels`` speaks for this component."""
        return labels.get("component") == self.id and all(
            labels.get(name) == value for name, value in self.match.items()
        )


def _shipped_components() -> tuple[Component, ...]:
    """The components of the shipped ticketing.yml: the default when a section has none."""
    import yaml

    from ticketing.config import SHIPPED_CONFIG

    shipped = yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    return tuple(Component.model_validate(c) for c in shipped["status"]["components"])


DEFAULT_COMPONENTS = _shipped_components()


if TYPE_CHECKING:
    SmtpServer = str | None
    SmtpPasswordFile = str | None
    Port = int
else:
    SmtpServer = FromEnvironment(NonEmptyStr | None, "STATUS_SMTP_SERVER", None)
    SmtpPasswordFile = FromEnvironment(NonEmptyStr | None, "STATUS_SMTP_PASSWORD_FILE", None)
    Port = AtLeast(1)


class EmailSettings(Section):
    """``status.email``: subscriptions by email, sent from the outbox through SMTP."""

    error = StatusConfigError

    #: host:port of the SMTP server; null: $STATUS_SMTP_SERVER, else no email subscriptions.
    smtp_server: SmtpServer = None
    sender: NonEmptyStr = "status@partnerwatch.example"
    starttls: Flag = False
    username: NonEmptyStr | None = None
    password_file: SmtpPasswordFile = None
    timeout: PositiveDuration = 10.0
    #: A pending address is sent at most one confirmation request per this long.
    resend_after: PositiveDuration = 3600.0

    @field_validator("smtp_server")
    @classmethod
    def _server(cls, value: str | None) -> str | None:
        if value is not None:
            host, _, port = value.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"must be host:port such as mailpit:1025 (got {value!r})")
        return value

    @property
    def enabled(self) -> bool:
        return self.smtp_server is not None


class LinkingSettings(Section):
    """``status.linking``: tickets filed during a published incident, linked to it.

    A ticket scoring at least ``link_at`` against an open published incident
    is linked to it; at least ``suggest_at``, suggested to staff (linking.py
    says how the score is made).
    """

    error = StatusConfigError

    enabled: Flag = True
    link_at: PositiveNumber = 0.7
    suggest_at: PositiveNumber = 0.3

    @model_validator(mode="after")
    def _checked(self) -> LinkingSettings:
        if self.suggest_at > self.link_at:
            raise Invalid({"suggest_at": "must be <= status.linking.link_at"})
        return self


class StatusSettings(Section):
    error = StatusConfigError

    enabled: Flag = True
    page_name: NonEmptyStr = "Partnerwatch platform status"
    #: The page's public address (links in events, the feed, summary.json);
    #: null: the address the request came to.
    page_url: NonEmptyStr | None = None
    components: Annotated[tuple[Component, ...], listed("a list of components")] = (
        DEFAULT_COMPONENTS
    )
    severity_states: Annotated[dict[Severity, State], mapping("a mapping of severity to state")] = {
        "critical": "major_outage",
        "warning": "degraded_performance",
    }
    auto_publish: Annotated[tuple[Severity, ...], listed("a list of severities")] = ()
    receiver_token_file: TokenFile = None
    history_days: Days = 90
    poll_interval: PositiveDuration = 5.0
    cache_ttl: NonNegativeDuration = 1.0
    #: Validated even when absent, so that its null settings read the environment.
    email: EmailSettings = Field(default_factory=dict, validate_default=True)
    linking: LinkingSettings = Field(default_factory=dict, validate_default=True)
    _receiver_token: str | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _checked(self) -> StatusSettings:
        problems: dict[Any, Any] = {}
        seen: set[str] = set()
        for i, component in enumerate(self.components):
            if component.id in seen:
                problems[("components", i, "id")] = (
                    f"must be unique ({component.id} is listed twice)"
                )
            seen.add(component.id)
        if problems:
            raise Invalid(problems)
        if self.receiver_token_file:
            from ticketing.webhooks.settings import _read_token

            try:
                self._receiver_token = _read_token(self.receiver_token_file)
            except ValueError as exc:
                raise Invalid({"receiver_token_file": str(exc)}) from None
        return self

    @property
    def receiver_token(self) -> str | None:
        """The token read from ``receiver_token_file`` (None: use the webhooks receiver's)."""
        return self._receiver_token

    def component(self, component_id: str) -> Component | None:
        return next((c for c in self.components if c.id == component_id), None)

    def component_for(self, labels: Mapping[str, str]) -> Component | None:
        """The component an alert's labels speak for, if any."""
        return next((c for c in self.components if c.matches(labels)), None)


def load_settings(
    section: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None
) -> StatusSettings:
    """Validate the ``status`` section."""
    context = {"environ": os.environ if environ is None else environ}
    return StatusSettings.load(section, "status", context)
