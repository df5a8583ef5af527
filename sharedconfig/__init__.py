"""What both services' configuration is built on: durations, typed settings, located errors.

The exporter (:mod:`exporter.schema`, :mod:`exporter.config`) and the ticket
service (:mod:`ticketing.config`, every ``settings.py`` of its extensions)
describe their YAML as frozen pydantic models and report problems through this
module, so both say the same thing the same way: one line per problem,
``location: problem``, every problem at once:

    outbox.max_backoff: must be >= outbox.initial_backoff
    sla.first_response.high: must be a duration such as 15s, 500ms or 2m (got 'soon')

What it provides:

- errors: :class:`ConfigError` (one ``location: message`` line per problem;
  subclasses set ``title``), :class:`Invalid` (raised by a check between
  settings, located within its model), :func:`located_problems` (pydantic's
  errors, located and reworded) and :func:`format_location`;
- files: :func:`read_yaml` (the safe loader, refusing duplicate keys, problems
  raised as a :class:`ConfigError`);
- durations: :func:`parse_duration` (``"500ms"``, ``"15s"``, ``"1h30m"``, a
  number of seconds -> seconds), :func:`format_duration` (the reverse) and the
  field types :data:`Duration`, :data:`PositiveDuration`,
  :data:`NonNegativeDuration`;
- strict setting types, worded for the person editing the file: :data:`Flag`,
  :data:`PositiveInt`, ``AtLeast(n)``, :data:`PositiveNumber`,
  :data:`NonEmptyStr`, ``OneOf(choices)``, :data:`Strings`, :data:`Keywords`,
  :data:`HttpUrl`, :data:`HttpUrls`, and the field metadata ``mapping()`` and
  ``listed()``;
- sections: :class:`Section` (frozen, unknown keys refused as ``unknown
  setting``, null meaning the default) with :meth:`Section.load`, and
  ``FromEnvironment(type, "VARIABLE", default)`` for a setting that, when not
  set, comes from the environment (:func:`from_environment`).

**A ticket-service extension's section** (``webhooks:`` in ticketing.yml, say) is a
:class:`Section` subclass in the extension's own ``settings.py``, registered with
one line in :data:`ticketing.config.SECTIONS` so ``partnerwatch-ticketing
check-config`` checks it too; its ``init_app`` loads it with :meth:`Section.load`.
A shortened :class:`ticketing.webhooks.settings.WebhooksSettings`:

    from pydantic import model_validator
    from sharedconfig import AtLeast, Flag, FromEnvironment, Invalid, NonEmptyStr
    from sharedconfig import PositiveDuration, Section

    class WebhooksSettings(Section):
        error = WebhooksConfigError              # the ConfigError subclass load() raises
        enabled: Flag = True
        read_timeout: PositiveDuration = 5.0     # "5s", "500ms", 5 ...
        batch_size: AtLeast(1) = 5
        initial_backoff: PositiveDuration = 10.0
        max_backoff: PositiveDuration = 3600.0
        receiver_token_file: FromEnvironment(
            NonEmptyStr | None, "WEBHOOKS_RECEIVER_TOKEN_FILE", None
        ) = None                                 # null (or absent): from the environment

        @model_validator(mode="after")
        def _checked(self) -> WebhooksSettings:  # checks between settings, located
            if self.max_backoff < self.initial_backoff:
                raise Invalid({"max_backoff": "must be >= webhooks.initial_backoff"})
            return self

    # ticketing/config.py, in SECTIONS:
    #     "webhooks": "ticketing.webhooks.settings:WebhooksSettings",
    # ticketing/webhooks/settings.py, for init_app:
    #     settings = WebhooksSettings.load(section, "webhooks", context)

A check of a single setting is a ``field_validator`` raising ``ValueError("must
be ...")``; checks between settings raise :class:`Invalid` from a
``model_validator(mode="after")``; the validation context (``context`` of
:meth:`Section.load`) carries ``environ`` for ``FromEnvironment`` and whatever
else a check needs. Settings are plain attribute access at run time: validation
happens once, at start.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Self

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import ErrorDetails

__all__ = [
    "AtLeast",
    "ConfigError",
    "Duration",
    "Flag",
    "HttpUrl",
    "HttpUrls",
    "Invalid",
    "Keywords",
    "FromEnvironment",
    "NonEmptyStr",
    "from_environment",
    "NonNegativeDuration",
    "OneOf",
    "PositiveDuration",
    "PositiveInt",
    "PositiveNumber",
    "Section",
    "Strings",
    "format_duration",
    "format_location",
    "read_yaml",
    "listed",
    "located_problems",
    "mapping",
    "parse_duration",
]


# ------------------------------------------------------------------ errors


def format_location(loc: Iterable[Any]) -> str:
    """``("queries", "energy", "metrics", 0)`` -> ``queries.energy.metrics[0]``."""
    text = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "(top level)"


class ConfigError(ValueError):
    """An invalid configuration; ``problems`` holds one ``location: message`` line per problem.

    Built from lines or from ``(location, message)`` pairs (a location being a
    string or a tuple of keys and indexes). ``title``, when a subclass sets it,
    heads the exception's text: ``invalid ticketing configuration:``.
    """

    title: ClassVar[str | None] = None

    def __init__(self, problems: Iterable[str | tuple[Any, str]]):
        self.problems = [
            p
            if isinstance(p, str)
            else f"{p[0] if isinstance(p[0], str) else format_location(p[0])}: {p[1]}"
            for p in problems
        ]
        text = "\n  ".join(self.problems) if self.title else "\n".join(self.problems)
        super().__init__(f"{self.title}:\n  {text}" if self.title else text)

    def lines(self) -> list[str]:
        return list(self.problems)


class Invalid(ValueError):
    """Problems found by a check between settings, located within the model that raised it.

    raise Invalid({"max_backoff": "must be >= outbox.initial_backoff"})
    raise Invalid([(("routes", "refund"), "no limit is configured for action 'refund'")])
    """

    def __init__(self, problems: Mapping[Any, str] | Iterable[tuple[Any, str]]):
        items = problems.items() if isinstance(problems, Mapping) else problems
        self.problems = [
            ((loc,) if not isinstance(loc, tuple) else loc, message) for loc, message in items
        ]
        super().__init__("; ".join(f"{format_location(loc)}: {m}" for loc, m in self.problems))


_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


def located_problems(
    exc: ValidationError, prefix: tuple[Any, ...] = (), *, unknown: str = "unknown setting"
) -> list[tuple[tuple[Any, ...], str]]:
    """``(location, message)`` for every error pydantic found, located from ``prefix``.

    Messages raised by validators (``ValueError("must be ...")``) are kept as
    they are; pydantic's own are reworded (``must be > 0 (got 0)``, ``unknown
    setting``, ``required key is missing``). A list reported empty only because
    its items were invalid is not reported again.
    """
    errors = exc.errors()
    inner = {tuple(e["loc"][:i]) for e in errors for i in range(len(e["loc"]))}
    problems: list[tuple[tuple[Any, ...], str]] = []
    for error in errors:
        loc = prefix + tuple(error["loc"])
        if error["type"] == "too_short" and tuple(error["loc"]) in inner:
            continue
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, Invalid):
            problems += [(loc + sub, message) for sub, message in cause.problems]
            continue
        if loc and loc[-1] == "[key]":
            loc = loc[:-1]
            if error["type"] == "string_pattern_mismatch":
                problems.append(
                    (
                        loc,
                        "invalid name: use letters, digits and underscores, "
                        "not starting with a digit",
                    )
                )
                continue
        problems.append((loc, _message(error, unknown)))
    return problems


def _message(error: ErrorDetails, unknown: str) -> str:
    kind, ctx, got = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return unknown
    if kind in _BOUNDS:
        return f"must be {_BOUNDS[kind]} {next(iter(ctx.values()))} (got {got!r})"
    if kind == "string_pattern_mismatch":
        return f"invalid name {got!r}: must match {ctx.get('pattern')}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')} (got {got!r})"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "must be a mapping"
    message = error["msg"].replace("Input should be", "must be")
    if kind.endswith(("_type", "_parsing")):
        message += f" (got {got!r})"
    return message


# ------------------------------------------------------------------ files


if TYPE_CHECKING:  # the C loader has the pure-Python one's interface
    _SafeLoader = yaml.SafeLoader
else:
    _SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoader):
    """The safe loader (libyaml's parser when PyYAML has it), refusing duplicate keys.

    A key given twice is most likely a mistake; PyYAML would keep the last one.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: str | os.PathLike[str], error: type[ConfigError] = ConfigError) -> Any:
    """The document in ``path``; ``error`` with one located line if it cannot be read or parsed.

    ``exporter.yml: invalid YAML at line 7: duplicate key 'staleness'``,
    ``exporter.yml: cannot read: [Errno 2] No such file or directory: 'exporter.yml'``.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error([(str(path), f"cannot read: {exc}")]) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise error([(str(path), f"invalid YAML{where}: {problem}")]) from None


# ------------------------------------------------------------------ durations

#: One part of a duration: a number and its unit (``ms`` before ``m``).
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|d|h|m|s)\s*")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_UNIT_ORDER = tuple(_UNIT_SECONDS)


def parse_duration(value: Any) -> float:
    """Seconds in a duration setting; ``ValueError`` (its message ready to show) if not one.

    A number is seconds; a string is a number of seconds or parts from the
    largest unit down: ``"500ms"``, ``"30s"``, ``"5m"``, ``"4h"``, ``"1d"``,
    ``"1h30m"``, ``"1.5h"``. Callers doing date arithmetic wrap the result:
    ``timedelta(seconds=parse_duration("4h"))``.
    """
    seconds = _seconds(value)
    if seconds is None or not math.isfinite(seconds):
        raise ValueError(f"must be a duration such as 15s, 500ms or 2m (got {value!r})")
    return seconds


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):  # YAML reads `yes` as true
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


def format_duration(seconds: float) -> str:
    """The way a duration is written: ``500ms``, ``15s``, ``90s``, ``30m``, ``2h``, ``7d``."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit in ("d", "h", "m"):
        count = seconds / _UNIT_SECONDS[unit]
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[float, BeforeValidator(parse_duration)]
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
NonNegativeDuration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]


# ------------------------------------------------------------------ strict setting types
# YAML is loosely typed (`yes` is true, `5` and "5" differ): these accept only
# what the file should say, and word the problem for the person editing it.


def _checked(
    valid: Callable[[Any], bool],
    message: str,
    convert: Callable[[Any], Any] = lambda value: value,
) -> PlainValidator:
    def check(value: Any) -> Any:
        if not valid(value):
            raise ValueError(f"{message} (got {value!r})")
        return convert(value)

    return PlainValidator(check)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


Flag = Annotated[bool, _checked(lambda v: isinstance(v, bool), "must be true or false")]
PositiveInt = Annotated[int, _checked(lambda v: _is_int(v) and v > 0, "must be an integer > 0")]
PositiveNumber = Annotated[
    float, _checked(lambda v: _is_number(v) and v > 0, "must be a number > 0", float)
]
NonEmptyStr = Annotated[
    str,
    _checked(
        lambda v: isinstance(v, str) and v.strip() != "", "must be a non-empty string", str.strip
    ),
]


def AtLeast(minimum: int) -> Any:
    """An integer >= ``minimum``: ``batch_size: AtLeast(1) = 50``."""
    return Annotated[
        int, _checked(lambda v: _is_int(v) and v >= minimum, f"must be an integer >= {minimum}")
    ]


def OneOf(choices: Sequence[str], convert: Callable[[Any], Any] = lambda value: value) -> Any:
    """One of ``choices`` (``must be one of a, b (got 'c')``), converted by ``convert``."""
    return Annotated[
        Any,
        _checked(
            lambda v: isinstance(v, str) and v in choices,
            f"must be one of {', '.join(choices)}",
            convert,
        ),
    ]


def mapping(expected: str = "a mapping") -> BeforeValidator:
    """Field metadata: the value must be a mapping, the problem worded ``must be {expected}``."""

    def check(value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise ValueError(f"must be {expected}")
        return value

    return BeforeValidator(check)


def listed(expected: str = "a list", allow_empty: bool = True) -> BeforeValidator:
    """Field metadata: the value must be a list (non-empty unless ``allow_empty``)."""

    def check(value: Any) -> Any:
        if not isinstance(value, list) or (not allow_empty and not value):
            raise ValueError(f"must be {expected}")
        return value

    return BeforeValidator(check)


def _keyword(value: Any) -> str:
    if _is_number(value):  # `- 401` in YAML is a number; it is meant as a word
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string (got {value!r})")
    return value.strip().lower()


#: Non-empty strings, stripped; the bad items reported one by one (``headers[1]: ...``).
Strings = Annotated[tuple[NonEmptyStr, ...], listed("a list")]
#: A non-empty list of keywords (numbers read as words), lower-cased.
Keywords = Annotated[
    tuple[Annotated[str, PlainValidator(_keyword)], ...],
    listed("a non-empty list of keywords", allow_empty=False),
]

_URL = re.compile(r"^https?://[^/\s]+")


def _url(value: Any) -> str:
    if not isinstance(value, str) or not _URL.match(value):
        raise ValueError(f"must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _url_list(value: Any) -> Any:
    items = [u.strip() for u in value.split(",")] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ValueError("must be a URL or a list of URLs")
    if len(items) == 1:  # one URL: its problem is the setting's, not item [0]'s
        return (_url(items[0]),)
    return items


#: An http(s) URL without its trailing slash.
HttpUrl = Annotated[str, PlainValidator(_url)]
#: A URL, a comma-separated string of URLs or a list of them -> a tuple of URLs.
HttpUrls = Annotated[tuple[HttpUrl, ...], BeforeValidator(_url_list)]


# ------------------------------------------------------------------ sections


def from_environment(value: Any, info: ValidationInfo, variable: str, default: Any) -> Any:
    """``value``, or when it is not set (null, empty) ``$variable``, else ``default``.

    The environment is the validation context's ``environ`` (``os.environ``
    without one), so a caller can pass the app's own settings.
    """
    if value not in (None, ""):
        return value
    environ = (info.context or {}).get("environ", os.environ)
    return environ.get(variable) or default


def FromEnvironment(kind: Any, variable: str, default: Any) -> Any:
    """A setting of type ``kind`` that, when not set, is ``$variable``, else ``default``.

    prometheus_url: FromEnvironment(HttpUrl, "PROMETHEUS_URL", "http://127.0.0.1:9090") = None
    """
    fill = BeforeValidator(lambda value, info: from_environment(value, info, variable, default))
    return Annotated[kind, fill, Field(validate_default=True)]


class Section(BaseModel):
    """A configuration section (or part of one): frozen, unknown keys refused, null = default.

    ``error`` is the :class:`ConfigError` subclass :meth:`load` raises.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    error: ClassVar[type[ConfigError]] = ConfigError

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {key: value for key, value in data.items() if value is not None}
        return data

    @classmethod
    def load(cls, raw: Any, name: str, context: Mapping[str, Any] | None = None) -> Self:
        """``raw`` (the section as read from YAML; None: absent) checked as section ``name``.

        Raises :attr:`error` listing every problem, each located from ``name``.
        """
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise cls.error([f"{name}: must be a mapping"])
        try:
            return cls.model_validate(raw, context=dict(context or {}))
        except ValidationError as exc:
            raise cls.error(located_problems(exc, (name,))) from None
