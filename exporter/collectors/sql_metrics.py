"""SQL metrics: a named query run on its own schedule, its rows turned into metrics.

Each query (``query:<name>``) names a database, its SQL, and the metrics to
read from the result: a value column and label columns per metric. Column
names are matched case-insensitively (PostgreSQL folds unquoted aliases to
lower case). Bind parameters: ``:now`` is the current UTC time (naive, like
the stored timestamps) and each entry of ``params`` is "now minus that
duration", which keeps time windows portable between SQLite and PostgreSQL::

    active_partners:
      database: platform
      params: {since: 15m}
      sql: SELECT COUNT(DISTINCT partner_id) AS active FROM transactions
           WHERE created_at >= :since
      metrics:
        - {name: platform_partners_active, help: ..., value: active}

A row whose value is NULL is skipped; a timestamp value (a datetime, or the
ISO 8601 text SQLite returns; naive is UTC) becomes Unix seconds, for
``..._timestamp_seconds`` metrics; a value that is not a number, a missing
column, or two rows with the same labels fail the run.

A query with a ``series_budget`` publishes at most ``max_series`` series: past
it, the groups of series (by the ``group_by`` labels) least recently active
are held back, and ``exporter_query_series{collector}``,
``exporter_query_series_limit{collector}`` and
``exporter_query_series_dropped{collector}`` say so. Queries with
``incremental:`` are :class:`exporter.collectors.incremental.IncrementalQuery`.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from exporter.collectors.base import CollectFailed, Collector
from exporter.databases import Database
from exporter.schema import MetricSpec, QueryConfig, SeriesBudget
from exporter.sqltext import bind_names

log = logging.getLogger(__name__)

MAX_ROWS = 10_000

#: Label values of one series, in the order of its metric's ``labels``.
Labels = tuple[str, ...]
#: Metric name -> label values -> value.
Samples = dict[str, dict[Labels, float]]


class SqlQuery(Collector):
    def __init__(self, name: str, config: QueryConfig, database: Database, **schedule: float):
        super().__init__(f"query:{name}", **schedule)
        self.query_name = name
        self.config = config
        self.database = database
        self.param_names = bind_names(config.sql)
        self.statement = database.prepare(config.sql)
        self.budget = Budget(config.series_budget, config.metrics) if config.series_budget else None
        self._previous: Samples = {}
        self._sample_cache: dict[str, dict[Labels, Sample]] = {}
        #: Per metric: the samples last published (all of them fit the budget) and
        #: each label set's position among them.
        self._published: dict[str, tuple[list[Sample], dict[Labels, int]]] = {}

    def _values(self) -> dict[str, Any]:
        """``:now`` and every configured parameter (now minus its duration)."""
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        values: dict[str, Any] = {"now": now}
        for name, seconds in self.config.params.items():
            values[name] = now - dt.timedelta(seconds=seconds)
        return values

    def _params(self) -> dict[str, Any]:
        values = self._values()
        return {name: values[name] for name in self.param_names}

    def collect(self) -> list[Metric]:
        try:
            with self.database.connect(self.timeout) as conn:
                cursor = conn.execute(self.statement, self._params())
                columns = [c[0].lower() for c in cursor.description or ()]
                rows = cursor.fetchmany(MAX_ROWS + 1)
        except Exception as exc:
            raise CollectFailed(self.database.describe(exc)) from None
        if len(rows) > MAX_ROWS:
            raise CollectFailed(f"more than {MAX_ROWS} rows; aggregate in SQL")
        samples = read_samples(self.config.metrics, columns, rows)
        if self.budget is not None:
            # A group is active when one of its series is new or changed value.
            self.budget.touch(self.budget.groups_in(changed_series(samples, self._previous)))
            self.budget.forget_absent(samples)
            self._previous = samples
        return self.families(samples)

    def families(
        self, samples: Samples, changed: dict[str, Iterable[Labels]] | None = None
    ) -> list[Metric]:
        """The metric families of ``samples``, within the series budget if there is one.

        Each series' :class:`Sample` is kept from one run to the next and made
        again only when its value changed: a query with tens of thousands of
        series (one per partner) costs little when few of them moved. With
        ``changed`` (the label sets that may have changed since the last call:
        an incremental query knows them), only those are looked at.
        """
        kept = self.budget.select(samples) if self.budget is not None else None
        families: list[Metric] = []
        for spec in self.config.metrics:
            cls = CounterMetricFamily if spec.type == "counter" else GaugeMetricFamily
            family = cls(spec.name, spec.help, labels=list(spec.labels))
            series = samples.get(spec.name, {})
            known = self._published.get(spec.name)
            if kept is None and changed is not None and known is not None:
                published, position = known
                for labels in changed.get(spec.name, ()):
                    sample = self._sample(spec, labels, series[labels])
                    if labels in position:
                        published[position[labels]] = sample
                    else:
                        position[labels] = len(published)
                        published.append(sample)
                family.samples = list(published)
                families.append(family)
                continue
            before = self._sample_cache.get(spec.name, {})
            cache: dict[Labels, Sample] = {}
            for labels, value in series.items():
                if kept is not None and self.budget and self.budget.group(spec, labels) not in kept:
                    continue
                last = before.get(labels)
                made = last if last is not None and last.value == value else None
                if made is None:
                    made = self._sample(spec, labels, value)
                cache[labels] = made
                family.samples.append(made)
            self._sample_cache[spec.name] = cache
            if kept is None:
                self._published[spec.name] = (
                    list(family.samples),
                    {labels: i for i, labels in enumerate(cache)},
                )
            else:  # held back series: the next call starts over
                self._published.pop(spec.name, None)
            families.append(family)
        if self.budget is not None:
            families += self.budget.families(self.name)
        return families

    @staticmethod
    def _sample(spec: MetricSpec, labels: Labels, value: float) -> Sample:
        return Sample(spec.name, dict(zip(spec.labels, labels, strict=True)), value)

    def status(self) -> dict[str, Any]:
        return self.budget.status() if self.budget is not None else {}


def changed_series(samples: Samples, previous: Samples) -> Iterable[tuple[str, Labels]]:
    """(metric, labels) of each series of ``samples`` that is new or changed value."""
    for name, series in samples.items():
        before = previous.get(name, {})
        for labels, value in series.items():
            if before.get(labels) != value:
                yield name, labels


def read_samples(
    specs: Sequence[MetricSpec],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    add: bool = False,
) -> Samples:
    """Each metric's samples from a result; rows with the same labels fail (or add up)."""
    index = {column: i for i, column in enumerate(columns)}
    samples: Samples = {}
    for spec in specs:
        missing = [c for c in (spec.value, *spec.labels) if c.lower() not in index]
        if missing:
            raise CollectFailed(
                f"{spec.name}: no column {', '.join(map(repr, missing))} "
                f"in the result (columns: {', '.join(columns)})"
            )
        value_at = index[spec.value.lower()]
        label_at = [index[label.lower()] for label in spec.labels]
        series: dict[Labels, float] = {}
        for row in rows:
            raw = row[value_at]
            if raw is None:
                continue
            labels = tuple("" if row[i] is None else str(row[i]) for i in label_at)
            value = _number(spec.name, raw)
            if labels in series:
                if not add:
                    named = dict(zip(spec.labels, labels, strict=True))
                    raise CollectFailed(f"{spec.name}: two rows with labels {named}")
                value += series[labels]
            series[labels] = value
        samples[spec.name] = series
    return samples


class Budget:
    """At most ``max_series`` series, keeping the most recently active groups.

    A group is the values of the ``group_by`` labels (each series its own group
    when there are none): a partner's series are kept or held back together.
    Activity is a number that grows with time (a run's clock, or the
    watermark of an incremental query); ties go to the lower label values, so
    two exporters reading the same rows keep the same groups.
    """

    def __init__(self, config: SeriesBudget, specs: Sequence[MetricSpec]):
        self.max_series = config.max_series
        self.group_by = config.group_by
        self._positions = {
            spec.name: tuple(spec.labels.index(label) for label in config.group_by)
            if config.group_by
            else None
            for spec in specs
        }
        self._names = {spec.name: i for i, spec in enumerate(specs)}
        self.last_active: dict[tuple[Any, ...], float] = {}
        self.published = 0
        self.dropped = 0
        self._warned = False

    def group(self, spec: MetricSpec | str, labels: Labels) -> tuple[Any, ...]:
        name = spec if isinstance(spec, str) else spec.name
        positions = self._positions[name]
        if positions is None:
            return (self._names[name], *labels)
        return tuple(labels[i] for i in positions)

    def groups_in(self, series: Iterable[tuple[str, Labels]]) -> set[tuple[Any, ...]]:
        return {self.group(name, labels) for name, labels in series}

    def touch(self, groups: Iterable[tuple[Any, ...]], activity: float | None = None) -> None:
        """Mark ``groups`` active now (or at ``activity``)."""
        moment = time.monotonic() if activity is None else activity
        for group in groups:
            self.last_active[group] = moment

    def forget_absent(self, samples: Samples) -> None:
        """Drop the activity of groups that have no series any more."""
        present = self.groups_in(
            (name, labels) for name, series in samples.items() for labels in series
        )
        for group in [g for g in self.last_active if g not in present]:
            del self.last_active[group]

    def select(self, samples: Samples) -> set[tuple[Any, ...]] | None:
        """The groups to publish (None: all of them fit)."""
        total = sum(len(series) for series in samples.values())
        if total <= self.max_series:
            self.published, self.dropped = total, 0
            self._warned = False
            return None
        sizes: dict[tuple[Any, ...], int] = {}
        for name, series in samples.items():
            for labels in series:
                group = self.group(name, labels)
                sizes[group] = sizes.get(group, 0) + 1
        order = sorted(sizes, key=lambda g: (-self.last_active.get(g, float("-inf")), g))
        kept: set[tuple[Any, ...]] = set()
        count = 0
        for group in order:
            if count + sizes[group] > self.max_series:
                break
            kept.add(group)
            count += sizes[group]
        self.published, self.dropped = count, total - count
        if not self._warned:
            log.warning(
                "series budget exceeded: %d series, budget %d; %d series of the least "
                "recently active groups held back",
                total,
                self.max_series,
                self.dropped,
            )
            self._warned = True
        return kept

    def families(self, collector: str) -> list[Metric]:
        series = GaugeMetricFamily(
            "exporter_query_series",
            "Series the query publishes (within its series budget).",
            labels=["collector"],
        )
        series.add_metric([collector], float(self.published))
        limit = GaugeMetricFamily(
            "exporter_query_series_limit",
            "The query's series budget (max_series).",
            labels=["collector"],
        )
        limit.add_metric([collector], float(self.max_series))
        dropped = GaugeMetricFamily(
            "exporter_query_series_dropped",
            "Series the query holds back because its series budget is exceeded.",
            labels=["collector"],
        )
        dropped.add_metric([collector], float(self.dropped))
        return [series, limit, dropped]

    def status(self) -> dict[str, Any]:
        return {
            "series": self.published,
            "series_limit": self.max_series,
            "series_dropped": self.dropped,
        }


def _number(metric: str, raw: Any) -> float:
    if isinstance(raw, (int, float, Decimal)):  # bool is an int
        return float(raw)
    if isinstance(raw, dt.datetime):
        return _epoch(raw)
    try:
        return float(raw)
    except (TypeError, ValueError):
        pass
    if isinstance(raw, str):  # SQLite keeps timestamps as text
        try:
            return _epoch(dt.datetime.fromisoformat(raw))
        except ValueError:
            pass
    raise CollectFailed(f"{metric}: value {raw!r} is not a number")


def _epoch(moment: dt.datetime) -> float:
    """Unix seconds of ``moment`` (naive: UTC, as the databases store it)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()
