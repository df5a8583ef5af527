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
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.collectors.base import CollectFailed, Collector
from exporter.databases import Database
from exporter.schema import QueryConfig
from exporter.sqltext import bind_names

MAX_ROWS = 10_000


class SqlQuery(Collector):
    def __init__(self, name: str, config: QueryConfig, database: Database, **schedule: float):
        super().__init__(f"query:{name}", **schedule)
        self.query_name = name
        self.config = config
        self.database = database
        self.param_names = bind_names(config.sql)
        self.statement = database.prepare(config.sql)

    def _params(self) -> dict[str, dt.datetime]:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        values = {"now": now}
        for name, seconds in self.config.params.items():
            values[name] = now - dt.timedelta(seconds=seconds)
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
        index = {column: i for i, column in enumerate(columns)}
        families: list[Metric] = []
        for spec in self.config.metrics:
            missing = [c for c in (spec.value, *spec.labels) if c.lower() not in index]
            if missing:
                raise CollectFailed(
                    f"{spec.name}: no column {', '.join(map(repr, missing))} "
                    f"in the result (columns: {', '.join(columns)})"
                )
            cls = CounterMetricFamily if spec.type == "counter" else GaugeMetricFamily
            family = cls(spec.name, spec.help, labels=list(spec.labels))
            value_at = index[spec.value.lower()]
            label_at = [index[label.lower()] for label in spec.labels]
            seen: set[tuple[str, ...]] = set()
            for row in rows:
                raw = row[value_at]
                if raw is None:
                    continue
                labels = tuple("" if row[i] is None else str(row[i]) for i in label_at)
                if labels in seen:
                    named = dict(zip(spec.labels, labels, strict=True))
                    raise CollectFailed(f"{spec.name}: two rows with labels {named}")
                seen.add(labels)
                family.add_metric(list(labels), _number(spec.name, raw))
            families.append(family)
        return families


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
