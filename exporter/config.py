"""Load the exporter's YAML configuration into a frozen :class:`~exporter.schema.Config`.

Loading happens in four steps, and every problem found is reported with its
location, one line each, so a broken file is fixed in one pass:

1. read and parse the YAML (``exporter.yml: invalid YAML at line 7: ...``);
2. expand ``${NAME}`` references from the environment (``${NAME:-default}``
   gives a default, ``$$`` is a literal ``$``), so secrets such as database
   URLs never sit in the file (``databases.platform.url: environment variable
   PLATFORM_DB_URL is not set``);
3. validate the shape with the pydantic models of :mod:`exporter.schema`
   (``queries.energy_pool.timeout: must be > 0``, ``collectors.foo: unknown
   collector``);
4. check what the schema cannot see: references between sections, metric
   name clashes, timeouts and intervals that do not fit together.

    try:
        config = load_config("exporter/partnerwatch.yml")
    except ConfigError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

import sharedconfig
from exporter.schema import Config, Schedule
from sharedconfig import format_duration, format_location, located_problems

#: Metric names (and prefixes) that the built-in collectors and the process own.
RESERVED_PREFIXES = (
    "exporter_collector_",
    "exporter_query_",
    "platform_api_probe_",
    "platform_db_",
    "platform_redis_",
    "process_",
    "python_",
)
#: Bind parameter always available to SQL queries.
BUILTIN_PARAMS = ("now",)

_ENV_REF = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|(\{[^}]*\}?))")


#: Where a problem is: mapping keys (as YAML gives them) and list indexes from the top.
Location = tuple[Any, ...]
#: A problem found: its location and what is wrong there.
Problem = tuple[Location, str]


class ConfigError(sharedconfig.ConfigError):
    """An invalid configuration: ``lines()`` (and ``problems``) are ``location: message``."""


# ----------------------------------------------------------------------- YAML


def read_yaml(path: str | os.PathLike[str]) -> Any:
    return sharedconfig.read_yaml(path, ConfigError)


# ---------------------------------------------------------------- environment


def expand_env(
    data: Any, environ: Mapping[str, str], location: Location = ()
) -> tuple[Any, list[Problem]]:
    """Expand ``${NAME}`` in every string value; return the new tree and the problems."""
    problems: list[Problem] = []
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            out[key], sub = expand_env(value, environ, location + (key,))
            problems += sub
        return out, problems
    if isinstance(data, list):
        items = []
        for index, value in enumerate(data):
            item, sub = expand_env(value, environ, location + (index,))
            items.append(item)
            problems += sub
        return items, problems
    if not isinstance(data, str) or "$" not in data:
        return data, problems

    def replace(match: re.Match[str]) -> str:
        dollar, name, default, bad = match.groups()
        if dollar:
            return "$"
        if bad is not None:
            problems.append(
                (
                    location,
                    f"invalid environment reference ${bad}: use ${{NAME}} or ${{NAME:-default}}",
                )
            )
            return match.group(0)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        problems.append((location, f"environment variable {name} is not set"))
        return match.group(0)

    return _ENV_REF.sub(replace, data), problems


# ----------------------------------------------------------------- validation


def _problems(exc: ValidationError) -> list[Problem]:
    """The schema's problems, located and worded as the ticket service's (sharedconfig)."""
    problems: list[Problem] = []
    for loc, message in located_problems(exc, unknown="unknown key"):
        if message == "unknown key" and len(loc) == 2 and loc[0] == "collectors":
            message = "unknown collector (known: database, http_probe, redis)"
        problems.append((loc, message))
    return problems


def _cross_checks(config: Config) -> list[Problem]:
    """What the schema cannot see: references, clashes, timing that cannot work."""
    problems: list[Problem] = []
    defined = sorted(config.databases)
    staleness = config.exporter.staleness

    def check_schedule(loc: Location, schedule: Schedule) -> None:
        if schedule.run_timeout > schedule.interval:
            problems.append(
                (
                    loc + ("timeout",),
                    f"must not exceed interval "
                    f"({format_duration(schedule.run_timeout)} > "
                    f"{format_duration(schedule.interval)})",
                )
            )
        limit = schedule.staleness or staleness
        where = "staleness" if schedule.staleness else "exporter.staleness"
        if schedule.interval >= limit:
            problems.append(
                (
                    loc + ("interval",),
                    f"must be shorter than {where} "
                    f"({format_duration(limit)}), or its series would go stale "
                    "between runs",
                )
            )

    collectors = config.collectors
    for key in ("http_probe", "database", "redis"):
        section = getattr(collectors, key)
        if section is not None and section.enabled:
            check_schedule(("collectors", key), section)
    if collectors.http_probe is not None:
        for name, target in collectors.http_probe.targets.items():
            if target.timeout is not None and target.timeout > collectors.http_probe.interval:
                problems.append(
                    (
                        ("collectors", "http_probe", "targets", name, "timeout"),
                        "must not exceed the collector's interval",
                    )
                )
    if collectors.database is not None and collectors.database.databases is not None:
        for index, name in enumerate(collectors.database.databases):
            if name not in config.databases:
                problems.append(
                    (
                        ("collectors", "database", "databases", index),
                        f"unknown database {name!r} (defined: {', '.join(defined) or 'none'})",
                    )
                )
    if collectors.database is not None and collectors.database.enabled and not config.databases:
        problems.append((("collectors", "database"), "enabled but no databases are defined"))

    if collectors.redis is not None and collectors.redis.enabled:
        problem = _check_redis_url(collectors.redis.url)
        if problem:
            problems.append((("collectors", "redis", "url"), problem))

    for name, db in config.databases.items():
        problem = _check_database_url(db.url)
        if problem:
            problems.append((("databases", name, "url"), problem))

    families: dict[str, str] = {}
    for qname, query in config.queries.items():
        loc = ("queries", qname)
        if query.database not in config.databases:
            problems.append(
                (
                    loc + ("database",),
                    f"unknown database {query.database!r} "
                    f"(defined: {', '.join(defined) or 'none'})",
                )
            )
        if query.enabled:
            check_schedule(loc, query)
        for param in _bind_params(query.sql):
            if param not in BUILTIN_PARAMS and param not in query.params:
                problems.append(
                    (loc + ("sql",), f"parameter :{param} is neither :now nor defined under params")
                )
        if query.incremental is not None:
            if not re.search(r"\bnew_rows\b", query.sql, re.I):
                problems.append(
                    (loc + ("sql",), "an incremental query reads its rows from new_rows")
                )
            for param in _bind_params(query.incremental.final or ""):
                if param not in BUILTIN_PARAMS and param not in query.params:
                    problems.append(
                        (
                            loc + ("incremental", "final"),
                            f"parameter :{param} is neither :now nor defined under params",
                        )
                    )
            for index, metric in enumerate(query.metrics):
                if metric.type != "counter":
                    problems.append(
                        (
                            loc + ("metrics", index, "type"),
                            "an incremental query publishes counters: must be counter",
                        )
                    )
        if query.series_budget is not None:
            for label in query.series_budget.group_by:
                for index, metric in enumerate(query.metrics):
                    if label not in metric.labels:
                        problems.append(
                            (
                                loc + ("series_budget", "group_by"),
                                f"label {label!r} is not a label of {metric.name} "
                                f"(metrics.{index})",
                            )
                        )
        for param in query.params:
            if param in BUILTIN_PARAMS:
                problems.append((loc + ("params", param), f":{param} is built in"))
        for index, metric in enumerate(query.metrics):
            mloc = loc + ("metrics", index)
            family = metric.name
            if metric.type == "counter":
                if not metric.name.endswith("_total"):
                    problems.append((mloc + ("name",), "counter names must end in _total"))
                family = metric.name.removesuffix("_total")
            if metric.name.startswith(RESERVED_PREFIXES):
                problems.append(
                    (mloc + ("name",), f"{metric.name} is reserved for the built-in collectors")
                )
            owner = families.get(family)
            if owner is not None:
                problems.append((mloc + ("name",), f"{metric.name} is already defined by {owner}"))
            families[family] = format_location(mloc)
            if metric.value in metric.labels:
                problems.append((mloc + ("value",), f"column {metric.value!r} is also a label"))
            if len(set(metric.labels)) != len(metric.labels):
                problems.append((mloc + ("labels",), "labels repeat"))
    return problems


def _bind_params(sql: str) -> list[str]:
    from exporter.sqltext import bind_names

    return bind_names(sql)


def _check_database_url(url: str) -> str | None:
    """A problem with a database URL (never repeating the URL: it may hold a password)."""
    import importlib.util

    from exporter.dburl import InvalidDatabaseURL, parse_database_url, postgres_conninfo

    try:
        parsed = parse_database_url(url)
    except InvalidDatabaseURL as exc:
        return str(exc)
    if parsed.dialect != "postgresql":
        return None
    if importlib.util.find_spec("psycopg") is None:
        return "no driver for PostgreSQL: install psycopg (3)"
    from psycopg import ProgrammingError
    from psycopg.conninfo import make_conninfo

    try:  # libpq knows its keywords: a misspelt one is a configuration error
        make_conninfo("", **postgres_conninfo(parsed))
    except ProgrammingError as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if parsed.password:
            message = message.replace(parsed.password, "***")
        return f"invalid database URL: {message}"
    return None


def _check_redis_url(url: str) -> str | None:
    from exporter.collectors.redis_health import parse_redis_url

    try:
        parse_redis_url(url)
    except ValueError as exc:
        return str(exc)
    return None


def validate(data: Any, environ: Mapping[str, str] | None = None) -> Config:
    """Validate an already parsed document; raise :class:`ConfigError` with every problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [("(top level)", f"must be a mapping of sections, not {type(data).__name__}")]
        )
    data, env_problems = expand_env(data, os.environ if environ is None else environ)
    problems = list(env_problems)
    env_locations = {loc for loc, _ in env_problems}
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems += [p for p in _problems(exc) if p[0] not in env_locations]
        raise ConfigError(problems) from None
    problems += [p for p in _cross_checks(config) if p[0] not in env_locations]
    if problems:
        raise ConfigError(problems)
    return config


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read, expand, validate and cross-check one configuration file."""
    data = read_yaml(path)
    if data is not None and not isinstance(data, dict):
        raise ConfigError(
            [
                (
                    str(path),
                    "must be a mapping of sections (exporter, databases, collectors, queries)",
                )
            ]
        )
    return validate(data, environ)
