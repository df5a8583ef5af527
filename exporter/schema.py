"""The exporter's configuration schema: frozen, typed pydantic models.

This module only describes the shape of a valid configuration file. Reading
the file, expanding ``${ENV}`` references, checking cross references (a query
naming an undefined database, two queries defining the same metric) and
turning validation errors into located messages is :mod:`exporter.config`'s
job; running what the configuration describes is :mod:`exporter.scheduler`'s.

Durations are written as a number of seconds or as a string with units
(``500ms``, ``15s``, ``2m``, ``1h``, ``1h30m``; :func:`sharedconfig.parse_duration`,
shared with the ticket service) and are stored as float seconds::

    >>> QueryConfig.model_validate({
    ...     "database": "platform", "sql": "SELECT 1 AS one", "interval": "30s",
    ...     "metrics": [{"name": "one", "help": "Always one.", "value": "one"}],
    ... }).interval
    30.0
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

# Durations mean the same in every partnerwatch configuration file.
from sharedconfig import Duration, PositiveDuration

DEFAULT_INTERVAL = 15.0
DEFAULT_TIMEOUT = 5.0
DEFAULT_STALENESS = 60.0
DEFAULT_LISTEN = "127.0.0.1:9701"

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
MetricName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")]
LabelName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")]
TableName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)?$")]


class Model(BaseModel):
    """Base: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ExporterSettings(Model):
    """The ``exporter:`` section: the process itself."""

    listen: str = DEFAULT_LISTEN
    #: A collector's series are dropped from /metrics once its last
    #: successful result is older than this (collectors may override it).
    staleness: PositiveDuration = DEFAULT_STALENESS

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"must be host:port, e.g. 127.0.0.1:9701 (got {value!r})")
        return value


class DatabaseConfig(Model):
    """One entry of ``databases:``: a PostgreSQL or SQLite URL (SQLAlchemy's form) and its pool."""

    url: str = Field(min_length=1)
    pool_size: int = Field(2, ge=1, le=20)
    max_overflow: int = Field(2, ge=0, le=20)
    connect_timeout: PositiveDuration = DEFAULT_TIMEOUT


class Schedule(Model):
    """What every scheduled collector (and every query) shares."""

    enabled: bool = True
    interval: PositiveDuration = DEFAULT_INTERVAL
    #: Upper bound of one run; defaults to the smaller of 5 s and the interval.
    timeout: PositiveDuration | None = None
    #: Overrides ``exporter.staleness`` for this collector.
    staleness: PositiveDuration | None = None

    @property
    def run_timeout(self) -> float:
        return self.timeout if self.timeout is not None else min(DEFAULT_TIMEOUT, self.interval)


class ProbeTarget(Model):
    url: str = Field(min_length=1)
    timeout: PositiveDuration | None = None
    expected_status: int = Field(200, ge=100, le=599)
    #: A regular expression the response body must contain (``re.search``).
    body_regex: str | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"must be an http:// or https:// URL (got {value!r})")
        return value

    @field_validator("body_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value


class HttpProbeConfig(Schedule):
    """``collectors.http_probe``: probes the platform API's health endpoints."""

    targets: dict[Name, ProbeTarget] = Field(min_length=1)


class DatabaseHealthConfig(Schedule):
    """``collectors.database``: ping (and on PostgreSQL, connection counts) per database."""

    #: Names from ``databases:``; all of them when omitted.
    databases: tuple[Name, ...] | None = None
    ping_query: str = Field("SELECT 1", min_length=1)


class RedisConfig(Schedule):
    """``collectors.redis``: PING one Redis."""

    url: str = Field(min_length=1)

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not re.match(r"^(redis|rediss|unix)://", value):
            raise ValueError(f"must be a redis://, rediss:// or unix:// URL (got {value!r})")
        return value


class CollectorsConfig(Model):
    """``collectors:``: the built-in collectors; SQL metrics live under ``queries:``."""

    http_probe: HttpProbeConfig | None = None
    database: DatabaseHealthConfig | None = None
    redis: RedisConfig | None = None


class MetricSpec(Model):
    """One metric read from a query's result: a value column and label columns."""

    name: MetricName
    type: Literal["gauge", "counter"] = "gauge"
    help: str = Field(min_length=1)
    #: The result column holding the value.
    value: str = Field(min_length=1)
    #: Result columns that become labels (the label is named after the column).
    labels: tuple[LabelName, ...] = ()


class IncrementalConfig(Model):
    """``incremental:`` of a query: counters advanced by the rows added since the last run.

    The query reads ``new_rows``, the rows of ``table`` whose ``key`` is past
    the watermark (and, with ``final``, only rows in their final state; rows
    read before they were final are read again until they are, then counted
    once). Its result is summed into counters kept by the exporter.
    """

    #: The table the rows come from (``schema.table`` allowed).
    table: TableName
    #: An indexed integer column that grows with every new row (an id).
    key: Name
    #: SQL condition true for rows in their final state (e.g. ``status <> 'pending'``).
    final: str | None = Field(None, min_length=1)
    #: Keys read per statement while catching up with the table's history.
    batch: int = Field(500_000, ge=1)
    #: Rows read before they were final and watched until they are; past this,
    #: the oldest are given up on (and never counted).
    max_pending: int = Field(10_000, ge=0)


class SeriesBudget(Model):
    """``series_budget:`` of a query: at most ``max_series`` series published.

    Past the budget, the groups (label values of ``group_by``; each series on
    its own when empty) least recently active are held back, and
    ``exporter_query_series_dropped`` says how many series that is.
    """

    max_series: int = Field(ge=1)
    group_by: tuple[LabelName, ...] = ()


class QueryConfig(Schedule):
    """One entry of ``queries:``: SQL run on a schedule, its rows turned into metrics."""

    database: Name
    sql: str = Field(min_length=1)
    #: Bind parameters set to "now minus this duration" (UTC, naive), e.g.
    #: ``since: 15m`` for ``WHERE created_at >= :since``. ``:now`` is always bound.
    params: dict[Name, Duration] = {}
    metrics: tuple[MetricSpec, ...] = Field(min_length=1)
    #: Counters advanced from a watermark instead of the whole result each run.
    incremental: IncrementalConfig | None = None
    #: A bound on the series the query publishes.
    series_budget: SeriesBudget | None = None


class Config(Model):
    """The whole configuration file."""

    exporter: ExporterSettings = ExporterSettings()
    databases: dict[Name, DatabaseConfig] = {}
    collectors: CollectorsConfig = CollectorsConfig()
    queries: dict[Name, QueryConfig] = {}
