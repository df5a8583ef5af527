"""The core's sections of ticketing.yml (``classification``, ``sla``, ``attachments``, ``api``).

Frozen pydantic models on :mod:`sharedconfig`'s types, registered in
:data:`ticketing.config.SECTIONS`; :func:`check_core` checks the four sections
together, so every problem of every one is reported at once:

    settings = check_core(load_sections())
    settings.sla.first_response["high"]         # timedelta(seconds=7200)
    settings.classification.category_rules[0]   # ("security", ("security", "breach", ...))
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, PrivateAttr, field_validator, model_validator

from sharedconfig import (
    FromEnvironment,
    Invalid,
    Keywords,
    NonEmptyStr,
    NonNegativeDuration,
    OneOf,
    PositiveInt,
    Section,
    listed,
    mapping,
    parse_duration,
)
from ticketing.config import check_sections
from ticketing.desk.choices import CATEGORIES, PRIORITIES

# sharedconfig's OneOf builds its pydantic type at run time, which a type checker
# cannot follow: it sees the type of the checked value.
if TYPE_CHECKING:
    Priority = str
    Category = str
    #: (category, keywords) in the configured order (what the validator makes of the mapping).
    CategoryRules = tuple[tuple[str, tuple[str, ...]], ...]
    MetricsTokenFile = str | None
else:
    MetricsTokenFile = FromEnvironment(NonEmptyStr | None, "TICKETING_METRICS_TOKEN_FILE", None)
    Priority = OneOf(PRIORITIES)
    Category = OneOf(CATEGORIES)
    CategoryRules = Annotated[
        dict[Category, Keywords], mapping(), AfterValidator(lambda rules: tuple(rules.items()))
    ]


def _timespan(value: Any) -> timedelta:
    """A duration > 0 as a timedelta: SLA targets and TTLs are added to timestamps."""
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"must be > 0 (got {value!r})")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(
            f"must be a duration of at most {timedelta.max.days} days (got {value!r})"
        ) from None


Timespan = Annotated[timedelta, BeforeValidator(_timespan)]


# ------------------------------------------------------------------ classification


def _fields(value: Any) -> Any:
    if (
        not isinstance(value, list)
        or not value
        or any(f not in ("title", "description") for f in value)
    ):
        raise ValueError("must be a non-empty list of: title, description")
    return value


class PriorityRule(Section):
    #: ``rule-<index>`` when the file gives no name.
    name: NonEmptyStr = ""
    fields: Annotated[tuple[Literal["title", "description"], ...], BeforeValidator(_fields)] = (
        "title",
        "description",
    )
    keywords: Keywords
    priority: Priority


def _named(rules: tuple[PriorityRule, ...]) -> tuple[PriorityRule, ...]:
    return tuple(
        rule if rule.name else rule.model_copy(update={"name": f"rule-{i}"})
        for i, rule in enumerate(rules)
    )


class ClassificationSettings(Section):
    default_priority: Priority = "medium"
    default_category: Category = "other"
    priority_rules: Annotated[
        tuple[PriorityRule, ...], listed("a list of rules"), AfterValidator(_named)
    ] = ()
    #: (category, keywords) in the configured order.
    category_rules: CategoryRules = ()


# ------------------------------------------------------------------ sla


def _every_priority(targets: dict[str, timedelta]) -> Mapping[str, timedelta]:
    missing = {p: "missing (every priority needs a target)" for p in PRIORITIES if p not in targets}
    if missing:
        raise Invalid(missing)
    return targets


PerPriority = Annotated[dict[Priority, Timespan], mapping(), AfterValidator(_every_priority)]


class SlaSettings(Section):
    first_response: PerPriority
    resolution: PerPriority


# ------------------------------------------------------------------ attachments, api

_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")


def _content_type(value: Any) -> str:
    if not isinstance(value, str) or not _CONTENT_TYPE.match(value.lower()):
        raise ValueError(f"must be a content type such as text/plain (got {value!r})")
    return value.lower()


class AttachmentSettings(Section):
    max_bytes: PositiveInt
    allowed_content_types: Annotated[
        frozenset[Annotated[str, BeforeValidator(_content_type)]], listed("a list of content types")
    ]


def read_token(path: str) -> str:
    """A bearer token from a file (surrounding whitespace removed): 16 characters at least."""
    try:
        token = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ValueError(f"cannot be read ({reason}): {path}") from None
    if len(token) < 16:
        raise ValueError("must hold a token of 16 characters or more")
    if not token.isascii() or not token.isprintable() or " " in token:
        raise ValueError("must hold one token of printable ASCII characters")
    return token


class ApiSettings(Section):
    max_json_bytes: PositiveInt
    default_page_size: PositiveInt
    max_page_size: PositiveInt
    idempotency_ttl: Timespan
    #: Seconds a process trusts an API key it accepted (0: ask the database every time).
    key_cache_ttl: NonNegativeDuration = 5.0
    #: A file holding the bearer token ``/metrics`` asks for (null:
    #: ``$TICKETING_METRICS_TOKEN_FILE``, else ``/metrics`` is public, as before).
    metrics_token_file: MetricsTokenFile = None
    _metrics_token: str | None = PrivateAttr(None)

    @property
    def metrics_token(self) -> str | None:
        """The token ``/metrics`` requires (read at start), or None: ``/metrics`` is public."""
        return self._metrics_token

    @field_validator("metrics_token_file", mode="after")
    @classmethod
    def _token_file(cls, path: str | None) -> str | None:
        if path:
            read_token(path)  # reported with the other problems of the section
        return path

    @model_validator(mode="after")
    def _page_sizes(self) -> ApiSettings:
        if self.default_page_size > self.max_page_size:
            raise Invalid({"default_page_size": "must not be larger than max_page_size"})
        if self.metrics_token_file:
            self._metrics_token = read_token(self.metrics_token_file)
        return self


class CoreSettings(Section):
    """The checked core sections; ``current_app.extensions["ticketing"]``."""

    classification: ClassificationSettings
    sla: SlaSettings
    attachments: AttachmentSettings
    api: ApiSettings


def check_core(sections: Mapping[str, Any]) -> CoreSettings:
    """Check the core's sections and return them as settings; ConfigError lists every problem."""
    return CoreSettings(**check_sections(sections, CoreSettings.model_fields))
