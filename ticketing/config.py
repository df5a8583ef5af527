"""Loading and checking the ticket service's YAML configuration.

The package ships ``ticketing/ticketing.yml`` with every default. A deployment
names its own file in the ``TICKETING_CONFIG`` environment variable; that file
is merged over the defaults (mappings key by key, everything else replaced).
The result is a plain mapping of sections, put on ``app.config["TICKETING"]``:

    sections = load_sections(os.environ.get("TICKETING_CONFIG"))
    sections["sla"]["first_response"]["high"]        # "2h"

The core checks its own sections here (``classification``, ``sla``,
``attachments``, ``api``) and turns them into frozen settings objects; every
extension checks its own section in its ``init_app``. A problem stops the
process with one line per problem, naming where it is:

    ConfigError: invalid ticketing configuration:
      sla.first_response.high: must be a duration such as "4h" (got 'soon')
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Mapping

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

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(value: Any) -> timedelta:
    """``90``, ``"45m"``, ``"4h"``, ``"1d"``, ``"1h30m"`` -> timedelta; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match and any(match.groups()):
            days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
            return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    raise ValueError(value)


class _Checker:
    """Collects problems so that all of them are reported at once."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, location: str, message: str) -> None:
        self.problems.append(f"{location}: {message}")

    def mapping(self, value: Any, location: str) -> dict:
        if not isinstance(value, dict):
            self.fail(location, "must be a mapping")
            return {}
        return value

    def unknown_keys(self, value: dict, allowed: set[str], location: str) -> None:
        for key in value:
            if key not in allowed:
                self.fail(f"{location}.{key}", "unknown setting")

    def duration(self, value: Any, location: str) -> timedelta | None:
        try:
            result = parse_duration(value)
        except ValueError:
            self.fail(location, f'must be a duration such as "4h" (got {value!r})')
            return None
        if result <= timedelta(0):
            self.fail(location, "must be > 0")
            return None
        return result

    def positive_int(self, value: Any, location: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            self.fail(location, f"must be an integer > 0 (got {value!r})")
            return None
        return value

    def choice(self, value: Any, choices: tuple[str, ...], location: str) -> str | None:
        if value not in choices:
            self.fail(location, f"must be one of {', '.join(choices)} (got {value!r})")
            return None
        return value

    def keywords(self, value: Any, location: str) -> tuple[str, ...]:
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


@dataclass(frozen=True)
class CoreSettings:
    """The checked core sections; ``current_app.extensions["ticketing"]``."""

    classification: ClassificationSettings
    sla: SlaSettings
    attachments: AttachmentSettings
    api: ApiSettings


def _classification(c: _Checker, raw: Any) -> ClassificationSettings | None:
    loc = "classification"
    section = c.mapping(raw, loc)
    c.unknown_keys(section, {"default_priority", "default_category", "priority_rules",
                             "category_rules"}, loc)
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
        rule = c.mapping(raw_rule, rloc)
        if not rule:
            continue
        c.unknown_keys(rule, {"name", "fields", "keywords", "priority"}, rloc)
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


def _per_priority(c: _Checker, raw: Any, loc: str) -> dict[str, timedelta]:
    section = c.mapping(raw, loc)
    c.unknown_keys(section, set(PRIORITIES), loc)
    targets = {}
    for priority in PRIORITIES:
        if priority not in section:
            c.fail(f"{loc}.{priority}", "missing (every priority needs a target)")
            continue
        value = c.duration(section[priority], f"{loc}.{priority}")
        if value is not None:
            targets[priority] = value
    return targets


def _sla(c: _Checker, raw: Any) -> SlaSettings:
    section = c.mapping(raw, "sla")
    c.unknown_keys(section, {"first_response", "resolution"}, "sla")
    return SlaSettings(_per_priority(c, section.get("first_response"), "sla.first_response"),
                       _per_priority(c, section.get("resolution"), "sla.resolution"))


_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")


def _attachments(c: _Checker, raw: Any) -> AttachmentSettings:
    loc = "attachments"
    section = c.mapping(raw, loc)
    c.unknown_keys(section, {"max_bytes", "allowed_content_types"}, loc)
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


def _api(c: _Checker, raw: Any) -> ApiSettings:
    loc = "api"
    section = c.mapping(raw, loc)
    c.unknown_keys(section, {"max_json_bytes", "default_page_size", "max_page_size",
                             "idempotency_ttl"}, loc)
    max_json = c.positive_int(section.get("max_json_bytes"), f"{loc}.max_json_bytes") or 1
    default_size = c.positive_int(section.get("default_page_size"),
                                  f"{loc}.default_page_size") or 1
    max_size = c.positive_int(section.get("max_page_size"), f"{loc}.max_page_size") or 1
    if default_size > max_size:
        c.fail(f"{loc}.default_page_size", "must not be larger than max_page_size")
    ttl = c.duration(section.get("idempotency_ttl"), f"{loc}.idempotency_ttl")
    return ApiSettings(max_json, default_size, max_size, ttl or timedelta(days=1))


def check_core(sections: Mapping[str, Any]) -> CoreSettings:
    """Check the core's sections and return them as settings; ConfigError lists every problem."""
    c = _Checker()
    classification = _classification(c, sections.get("classification"))
    sla = _sla(c, sections.get("sla"))
    attachments = _attachments(c, sections.get("attachments"))
    api = _api(c, sections.get("api"))
    if c.problems:
        raise ConfigError(c.problems)
    assert classification is not None
    return CoreSettings(classification, sla, attachments, api)
