"""Loading and checking the ticket service's YAML configuration.

The package ships ``ticketing/ticketing.yml`` with every default. A deployment
names its own file in the ``TICKETING_CONFIG`` environment variable; that file
is merged over the defaults (mappings key by key, everything else replaced).
The result is a plain mapping of sections, put on ``app.config["TICKETING"]``:

    sections = load_sections(os.environ.get("TICKETING_CONFIG"))
    sections["sla"]["first_response"]["high"]        # "2h"

The core checks its own sections here (``classification``, ``sla``,
``attachments``, ``api``) and turns them into frozen settings objects; every
extension checks its own section in its ``init_app``, with the same
:class:`Checker` and :func:`parse_duration`. A problem stops the process with
one line per problem, naming where it is:

    ConfigError: invalid ticketing configuration:
      sla.first_response.high: must be a duration such as "4h" (got 'soon')
"""
from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from .choices import CATEGORIES, PRIORITIES

SHIPPED_CONFIG = Path(__file__).with_name("ticketing.yml")
# libyaml's loader when PyYAML was built with it (10x faster; same safe subset).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigError(ValueError):
    """An invalid configuration; ``problems`` holds one ``location: message`` per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid ticketing configuration:\n  " + "\n  ".join(self.problems))


# ------------------------------------------------------------------ loading

def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` merged over ``base``: mappings recursively, other values replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_yaml(path: str | Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read ({exc.strerror or exc})"]) from None
    try:
        data = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML ({exc})"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: must be a mapping of sections"])
    return data


def load_sections(override_path: str | Path | None = None,
                  overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The shipped defaults, merged with ``override_path`` and then ``overrides``."""
    sections = read_yaml(SHIPPED_CONFIG)
    if override_path:
        sections = deep_merge(sections, read_yaml(override_path))
    if overrides:
        sections = deep_merge(sections, overrides)
    return sections


# ------------------------------------------------------------------ checking helpers

#: One part of a duration: a number and its unit (``ms`` before ``m``).
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|d|h|m|s)\s*")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_UNIT_ORDER = tuple(_UNIT_SECONDS)
_URL = re.compile(r"^https?://[^/\s]+")
_DURATION_PROBLEM = "must be a duration (seconds or e.g. 30s, 5m)"


def parse_duration(value: Any) -> float:
    """Seconds in a duration setting; ValueError when it is not one.

    A number is seconds; a string is a number of seconds or parts from the
    largest unit down: ``"500ms"``, ``"30s"``, ``"5m"``, ``"4h"``, ``"1d"``,
    ``"1h30m"``, ``"1.5h"``. Callers that do date arithmetic wrap the result:
    ``timedelta(seconds=parse_duration("4h"))``.
    """
    seconds = _seconds(value)
    if seconds is None or not math.isfinite(seconds):
        raise ValueError(_DURATION_PROBLEM)
    return seconds


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:  # an integer too large for a float
            return None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _NUMBER.fullmatch(text):
        return float(text)
    seconds, position, last_unit = 0.0, 0, -1
    for match in _DURATION_PART.finditer(text):
        unit = _UNIT_ORDER.index(match.group(2))
        if match.start() != position or unit <= last_unit:
            return None
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position, last_unit = match.end(), unit
    return seconds if text and position == len(text) else None


class Checker:
    """Checks settings and collects every problem, so that all are reported at once.

    Each problem is a line ``location: message``, the location being the path
    of the setting in the file (``outbox.max_backoff``, ``security.block[1]``).
    A helper returns the checked value, or ``default`` (``None`` unless given)
    after recording a problem; a setting that is absent (``None``) takes its
    ``default`` without complaint when one is given. A section checks itself
    and then raises what it found:

        c = Checker(OutboxConfigError)
        section = c.section(raw, "outbox", {"worker", "batch_size"})
        worker = c.boolean(section.get("worker"), "outbox.worker", default=True)
        c.raise_problems()          # OutboxConfigError listing every problem, if any
    """

    def __init__(self, error: type[ConfigError] = ConfigError) -> None:
        self.error = error
        self.problems: list[str] = []

    def fail(self, location: str, message: str) -> None:
        self.problems.append(f"{location}: {message}")

    def raise_problems(self) -> None:
        """Raise ``error`` with every problem found so far; nothing when there is none."""
        if self.problems:
            raise self.error(self.problems)

    def mapping(self, value: Any, location: str, allowed: Iterable[str] | None = None,
                *, optional: bool = False, expected: str = "a mapping") -> Mapping:
        """A mapping (``{}`` if it is not one), its keys checked against ``allowed``.

        ``optional``: an absent section (``None``) is an empty one. ``expected``
        words the problem: ``must be a mapping of action: rate``.
        """
        if value is None and optional:
            return {}
        if not isinstance(value, Mapping):
            self.fail(location, f"must be {expected}")
            return {}
        if allowed is not None:
            self.unknown_keys(value, allowed, location)
        return value

    def section(self, value: Any, name: str, allowed: Iterable[str]) -> Mapping:
        """A top-level section that may be absent; one that is not a mapping stops the check.

        Nothing inside such a section can be checked, so its error is raised at once.
        """
        section = self.mapping(value, name, optional=True)
        self.raise_problems()
        self.unknown_keys(section, allowed, name)
        return section

    def unknown_keys(self, value: Mapping, allowed: Iterable[str], location: str) -> None:
        allowed = set(allowed)
        for key in value:
            if key not in allowed:
                self.fail(f"{location}.{key}", "unknown setting")

    def duration(self, value: Any, location: str, *, allow_zero: bool = False,
                 invalid: str | None = None) -> float | None:
        """Seconds, > 0 (>= 0 with ``allow_zero``); ``invalid`` words an unreadable value."""
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.fail(location, invalid or str(exc))
            return None
        if seconds < 0 or (seconds == 0 and not allow_zero):
            self.fail(location, "must be >= 0" if allow_zero else "must be > 0")
            return None
        return seconds

    def _checked(self, value: Any, location: str, default: Any, valid: bool, message: str
                 ) -> Any:
        """``value`` if ``valid``; ``default`` if absent (when given) or after a problem."""
        if value is None and default is not None:
            return default
        if not valid:
            self.fail(location, f"{message} (got {value!r})")
            return default
        return value

    def boolean(self, value: Any, location: str, default: bool | None = None) -> bool | None:
        return self._checked(value, location, default, isinstance(value, bool),
                             "must be true or false")

    def positive_int(self, value: Any, location: str, default: int | None = None
                     ) -> int | None:
        valid = not isinstance(value, bool) and isinstance(value, int) and value > 0
        return self._checked(value, location, default, valid, "must be an integer > 0")

    def integer(self, value: Any, location: str, minimum: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(location, f"must be an integer >= {minimum}")
            return None
        return value

    def positive_number(self, value: Any, location: str, default: float | None = None
                        ) -> float | None:
        valid = not isinstance(value, bool) and isinstance(value, (int, float)) and value > 0
        number = self._checked(value, location, default, valid, "must be a number > 0")
        return None if number is None else float(number)

    def choice(self, value: Any, choices: Sequence[str], location: str) -> str | None:
        if value not in choices:
            self.fail(location, f"must be one of {', '.join(choices)} (got {value!r})")
            return None
        return value

    def string_list(self, value: Any, location: str) -> list[str]:
        """Non-empty strings, stripped; the bad items are reported one by one."""
        if not isinstance(value, list):
            self.fail(location, "must be a list")
            return []
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.fail(f"{location}[{i}]", f"must be a non-empty string (got {item!r})")
            else:
                out.append(item.strip())
        return out

    def keywords(self, value: Any, location: str) -> tuple[str, ...]:
        """A non-empty list of keywords (numbers read as words), lower-cased."""
        if not isinstance(value, list) or not value:
            self.fail(location, "must be a non-empty list of keywords")
            return ()
        words = []
        for i, word in enumerate(value):
            if isinstance(word, (int, float)) and not isinstance(word, bool):
                word = str(word)
            if not isinstance(word, str) or not word.strip():
                self.fail(f"{location}[{i}]", f"must be a non-empty string (got {word!r})")
                continue
            words.append(word.strip().lower())
        return tuple(words)

    def url(self, value: Any, location: str, default: str | None = None) -> str | None:
        """An http(s) URL without its trailing slash; ``default`` when null or empty."""
        if value in (None, "") and default is not None:
            value = default
        if not isinstance(value, str) or not _URL.match(value):
            self.fail(location, f"must be an http(s) URL, got {value!r}")
            return None
        return value.rstrip("/")

    def urls(self, value: Any, location: str, default: str | None = None
             ) -> tuple[str, ...] | None:
        """A URL, a comma-separated string of URLs or a list of them; ``default`` likewise."""
        if value in (None, "") and default is not None:
            value = default
        items = [u.strip() for u in value.split(",")] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            self.fail(location, "must be a URL or a list of URLs")
            return None
        checked = [self.url(item, f"{location}[{i}]" if len(items) > 1 else location)
                   for i, item in enumerate(items)]
        return None if None in checked else tuple(checked)


# ------------------------------------------------------------------ settings

@dataclass(frozen=True)
class PriorityRule:
    name: str
    fields: tuple[str, ...]
    keywords: tuple[str, ...]
    priority: str


@dataclass(frozen=True)
class ClassificationSettings:
    default_priority: str
    default_category: str
    priority_rules: tuple[PriorityRule, ...]
    #: (category, keywords) in the configured order.
    category_rules: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class SlaSettings:
    first_response: Mapping[str, timedelta]
    resolution: Mapping[str, timedelta]


@dataclass(frozen=True)
class AttachmentSettings:
    max_bytes: int
    allowed_content_types: frozenset[str]


@dataclass(frozen=True)
class ApiSettings:
    max_json_bytes: int
    default_page_size: int
    max_page_size: int
    idempotency_ttl: timedelta
    #: Seconds a process trusts an API key it accepted (0: ask the database every time).
    key_cache_ttl: float = 5.0


@dataclass(frozen=True)
class CoreSettings:
    """The checked core sections; ``current_app.extensions["ticketing"]``."""

    classification: ClassificationSettings
    sla: SlaSettings
    attachments: AttachmentSettings
    api: ApiSettings


def _classification(c: Checker, raw: Any) -> ClassificationSettings | None:
    loc = "classification"
    section = c.mapping(raw, loc, {"default_priority", "default_category", "priority_rules",
                                   "category_rules"})
    default_priority = c.choice(section.get("default_priority", "medium"), PRIORITIES,
                                f"{loc}.default_priority")
    default_category = c.choice(section.get("default_category", "other"), CATEGORIES,
                                f"{loc}.default_category")
    rules = []
    raw_rules = section.get("priority_rules", [])
    if not isinstance(raw_rules, list):
        c.fail(f"{loc}.priority_rules", "must be a list of rules")
        raw_rules = []
    for i, raw_rule in enumerate(raw_rules):
        rloc = f"{loc}.priority_rules[{i}]"
        rule = c.mapping(raw_rule, rloc, {"name", "fields", "keywords", "priority"})
        if not rule:
            continue
        fields = rule.get("fields", ["title", "description"])
        if (not isinstance(fields, list) or not fields
                or any(f not in ("title", "description") for f in fields)):
            c.fail(f"{rloc}.fields", "must be a non-empty list of: title, description")
            fields = []
        keywords = c.keywords(rule.get("keywords"), f"{rloc}.keywords")
        priority = c.choice(rule.get("priority"), PRIORITIES, f"{rloc}.priority")
        name = rule.get("name", f"rule-{i}")
        if not isinstance(name, str):
            c.fail(f"{rloc}.name", "must be a string")
        if fields and keywords and priority:
            rules.append(PriorityRule(str(name), tuple(fields), keywords, priority))
    categories = []
    raw_categories = c.mapping(section.get("category_rules", {}), f"{loc}.category_rules")
    for category, keywords in raw_categories.items():
        cloc = f"{loc}.category_rules.{category}"
        if c.choice(category, CATEGORIES, cloc) is None:
            continue
        words = c.keywords(keywords, cloc)
        if words:
            categories.append((category, words))
    if default_priority is None or default_category is None:
        return None
    return ClassificationSettings(default_priority, default_category, tuple(rules),
                                  tuple(categories))


def _timedelta(c: Checker, value: Any, location: str) -> timedelta | None:
    """A duration > 0 as a timedelta: SLA targets and TTLs are added to timestamps."""
    invalid = f'must be a duration such as "4h" (got {value!r})'
    seconds = c.duration(value, location, invalid=invalid)
    if seconds is None:
        return None
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        c.fail(location, invalid)
        return None


def _per_priority(c: Checker, raw: Any, loc: str) -> dict[str, timedelta]:
    section = c.mapping(raw, loc, PRIORITIES)
    targets = {}
    for priority in PRIORITIES:
        if priority not in section:
            c.fail(f"{loc}.{priority}", "missing (every priority needs a target)")
            continue
        value = _timedelta(c, section[priority], f"{loc}.{priority}")
        if value is not None:
            targets[priority] = value
    return targets


def _sla(c: Checker, raw: Any) -> SlaSettings:
    section = c.mapping(raw, "sla", {"first_response", "resolution"})
    return SlaSettings(_per_priority(c, section.get("first_response"), "sla.first_response"),
                       _per_priority(c, section.get("resolution"), "sla.resolution"))


_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")


def _attachments(c: Checker, raw: Any) -> AttachmentSettings:
    loc = "attachments"
    section = c.mapping(raw, loc, {"max_bytes", "allowed_content_types"})
    max_bytes = c.positive_int(section.get("max_bytes"), f"{loc}.max_bytes") or 1
    types = section.get("allowed_content_types")
    allowed = set()
    if not isinstance(types, list):
        c.fail(f"{loc}.allowed_content_types", "must be a list of content types")
        types = []
    for i, value in enumerate(types):
        if not isinstance(value, str) or not _CONTENT_TYPE.match(value.lower()):
            c.fail(f"{loc}.allowed_content_types[{i}]",
                   f"must be a content type such as text/plain (got {value!r})")
        else:
            allowed.add(value.lower())
    return AttachmentSettings(max_bytes, frozenset(allowed))


def _api(c: Checker, raw: Any) -> ApiSettings:
    loc = "api"
    section = c.mapping(raw, loc, {"max_json_bytes", "default_page_size", "max_page_size",
                                   "idempotency_ttl", "key_cache_ttl"})
    max_json = c.positive_int(section.get("max_json_bytes"), f"{loc}.max_json_bytes") or 1
    default_size = c.positive_int(section.get("default_page_size"),
                                  f"{loc}.default_page_size") or 1
    max_size = c.positive_int(section.get("max_page_size"), f"{loc}.max_page_size") or 1
    if default_size > max_size:
        c.fail(f"{loc}.default_page_size", "must not be larger than max_page_size")
    ttl = _timedelta(c, section.get("idempotency_ttl"), f"{loc}.idempotency_ttl")
    key_cache_ttl = 5.0
    if section.get("key_cache_ttl") is not None:
        key_cache_ttl = c.duration(section["key_cache_ttl"], f"{loc}.key_cache_ttl",
                                   allow_zero=True) or 0.0
    return ApiSettings(max_json, default_size, max_size, ttl or timedelta(days=1), key_cache_ttl)


def check_core(sections: Mapping[str, Any]) -> CoreSettings:
    """Check the core's sections and return them as settings; ConfigError lists every problem."""
    c = Checker()
    classification = _classification(c, sections.get("classification"))
    sla = _sla(c, sections.get("sla"))
    attachments = _attachments(c, sections.get("attachments"))
    api = _api(c, sections.get("api"))
    c.raise_problems()
    assert classification is not None
    return CoreSettings(classification, sla, attachments, api)
