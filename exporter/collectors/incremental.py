"""Incremental SQL metrics: counters advanced by the rows added since the last run.

A query with ``incremental:`` reads only the rows past a watermark on an
indexed integer ``key`` (an id), so a run costs what was added since the last
one, not the table's history. Its SQL reads ``new_rows``, which the exporter
defines for each run as the rows of ``table`` with ``key`` past the watermark
(and in their final state, when ``final`` is set); the result's values are
added to counters the exporter keeps, one per metric and label set::

    partner_transactions:
      database: platform
      incremental:
        table: transactions
        key: id
        final: status IN ('completed', 'failed')   # pending rows wait until they settle
      sql: |
        SELECT partner_id AS partner, status, COUNT(*) AS transactions
        FROM new_rows GROUP BY partner_id, status
      metrics:
        - {name: platform_partner_transactions_total, type: counter, ...}

How the counters stay right:

- **History first.** The first runs read the table from its lowest key in
  ``batch``-sized key ranges, as many per run as fit in half the timeout, and
  publish nothing until they have caught up; from then on the counters hold
  every row, so they do not reset when the exporter restarts (it catches up
  again) and two exporters reading the same database publish the same values.
- **Late rows.** A row past the watermark that is not yet final (a pending
  transaction) is remembered by its key and read again each run until it is
  final, then counted once, in its final state (up to ``max_pending`` keys;
  past that the oldest are given up on, and /status says how many).
- **One snapshot.** Each run reads in one transaction (PostgreSQL: repeatable
  read), so a row settling during the run is counted in exactly one run, and
  a failed run changes nothing.

Keys must be given in commit order (a row that commits with a key lower than
one already read is not seen; an identity column written by short
transactions is); rows are never expected to be deleted or to leave their
final state.
"""

from __future__ import annotations

import re
import time
from decimal import Decimal
from typing import Any

from prometheus_client.metrics_core import Metric

from exporter.collectors.base import CollectFailed
from exporter.collectors.sql_metrics import Samples, SqlQuery, read_samples
from exporter.databases import Database, Session
from exporter.schema import IncrementalConfig, QueryConfig
from exporter.sqltext import Statement

#: Rows one incremental statement may return (its result is aggregated in SQL).
MAX_DELTA_ROWS = 1_000_000
#: Keys of not-yet-final rows read again per statement.
PENDING_CHUNK = 500
#: Share of the timeout a run spends catching up before it stops for this run.
CATCH_UP_SHARE = 0.5

_WITH = re.compile(r"^\s*WITH\s+(RECURSIVE\s+)?", re.I)


def with_new_rows(rows_sql: str, sql: str) -> str:
    """``sql`` with ``new_rows`` defined as ``rows_sql`` (merged into its own WITH)."""
    match = _WITH.match(sql)
    if match:
        return f"WITH {match.group(1) or ''}new_rows AS ({rows_sql}),\n{sql[match.end() :]}"
    return f"WITH new_rows AS ({rows_sql})\n{sql}"


class IncrementalQuery(SqlQuery):
    def __init__(self, name: str, config: QueryConfig, database: Database, **schedule: float):
        super().__init__(name, config, database, **schedule)
        assert config.incremental is not None
        self.incremental: IncrementalConfig = config.incremental
        table, key = self.incremental.table, self.incremental.key
        self._final = f"({self.incremental.final})" if self.incremental.final else None
        final = f" AND {self._final}" if self._final else ""
        self._bounds = database.prepare(f"SELECT MIN({key}), MAX({key}) FROM {table}")
        self._range = database.prepare(
            with_new_rows(
                f"SELECT * FROM {table} WHERE {key} > :after AND {key} <= :upto{final}",
                config.sql,
            )
        )
        self._range_pending = (
            database.prepare(
                f"SELECT {key} FROM {table} "
                f"WHERE {key} > :after AND {key} <= :upto AND NOT {self._final}"
            )
            if self._final
            else None
        )
        self._by_keys: dict[int, tuple[Statement, Statement]] = {}
        #: Every row with a key up to this one has been read (None: not started).
        self.watermark: int | None = None
        #: Keys of rows read before they were final, oldest first.
        self.pending: list[int] = []
        self.pending_given_up = 0
        self.caught_up = False
        self._published_once = False
        self.totals: Samples = {spec.name: {} for spec in config.metrics}

    def _pending_statements(self, count: int) -> tuple[Statement, Statement]:
        """(deltas of the listed rows now final, keys of those still not final)."""
        if count not in self._by_keys:
            table, key = self.incremental.table, self.incremental.key
            keys = ", ".join(f":k{i}" for i in range(count))
            self._by_keys[count] = (
                self.database.prepare(
                    with_new_rows(
                        f"SELECT * FROM {table} WHERE {key} IN ({keys}) AND {self._final}",
                        self.config.sql,
                    )
                ),
                self.database.prepare(
                    f"SELECT {key} FROM {table} WHERE {key} IN ({keys}) AND NOT {self._final}"
                ),
            )
        return self._by_keys[count]

    def collect(self) -> list[Metric]:
        deadline = time.monotonic() + self.timeout * CATCH_UP_SHARE
        base = self._values()
        deltas: Samples = {spec.name: {} for spec in self.config.metrics}
        active: dict[tuple[Any, ...], float] = {}
        watermark = self.watermark
        still: list[int] = []
        highest: int | None = None
        try:
            with self.database.connect(self.timeout, snapshot=True) as conn:
                low, high = conn.execute(self._bounds).fetchone()
                highest = self._key(high)
                if watermark is None and low is not None:
                    watermark = self._key(low) - 1
                now_key = float(highest if highest is not None else 0)
                # Rows read before they were final: counted if they are now.
                for start in range(0, len(self.pending), PENDING_CHUNK):
                    chunk = self.pending[start : start + PENDING_CHUNK]
                    counted, waiting = self._pending_statements(len(chunk))
                    values = {**base, **{f"k{i}": k for i, k in enumerate(chunk)}}
                    self._add(conn, counted, values, deltas, active, now_key)
                    still += [self._key(row[0]) for row in conn.execute(waiting, values)]
                # New rows, one key range at a time.
                while watermark is not None and highest is not None and watermark < highest:
                    upto = min(highest, watermark + self.incremental.batch)
                    values = {**base, "after": watermark, "upto": upto}
                    self._add(conn, self._range, values, deltas, active, float(upto))
                    if self._range_pending is not None:
                        rows = conn.execute(self._range_pending, values).fetchall()
                        still += [self._key(row[0]) for row in rows]
                    watermark = upto
                    if time.monotonic() > deadline:
                        break
        except CollectFailed:
            raise
        except Exception as exc:
            raise CollectFailed(self.database.describe(exc)) from None
        # The run succeeded: take its rows in, all at once.
        for name, series in deltas.items():
            totals = self.totals[name]
            for labels, value in series.items():
                totals[labels] = totals.get(labels, 0.0) + value
        still.sort()
        excess = len(still) - self.incremental.max_pending
        if excess > 0:
            self.pending_given_up += excess
            still = still[excess:]
        self.pending = still
        self.watermark = watermark
        if watermark is None or highest is None or watermark >= highest:
            self.caught_up = True
        if self.budget is not None:
            for group, moment in active.items():
                self.budget.touch([group], moment)
        if not self.caught_up:
            return []  # half-read history would look like a burst of activity
        published, self._published_once = self._published_once, True
        if not published:  # the first publication: every series
            return self.families(self.totals)
        return self.families(self.totals, changed={k: v.keys() for k, v in deltas.items()})

    def _add(
        self,
        conn: Session,
        statement: Statement,
        values: dict[str, Any],
        deltas: Samples,
        active: dict[tuple[Any, ...], float],
        moment: float,
    ) -> None:
        cursor = conn.execute(statement, values)
        columns = [c[0].lower() for c in cursor.description or ()]
        rows = cursor.fetchmany(MAX_DELTA_ROWS + 1)
        if len(rows) > MAX_DELTA_ROWS:
            raise CollectFailed(f"more than {MAX_DELTA_ROWS} rows; aggregate in SQL")
        for name, series in read_samples(self.config.metrics, columns, rows, add=True).items():
            into = deltas[name]
            for labels, value in series.items():
                into[labels] = into.get(labels, 0.0) + value
                if self.budget is not None:
                    active[self.budget.group(name, labels)] = moment

    def _key(self, raw: Any) -> int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, Decimal) and raw == raw.to_integral_value():
            return int(raw)
        if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
            return int(raw)
        raise CollectFailed(
            f"incremental.key {self.incremental.key}: {raw!r} is not an integer "
            "(the key must be an integer column that grows with every new row)"
        )

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "watermark": self.watermark,
            "caught_up": self.caught_up,
            "pending_rows": len(self.pending),
            "pending_rows_given_up": self.pending_given_up,
        }
