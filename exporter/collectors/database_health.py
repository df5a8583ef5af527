"""Database health, one collector per database (``database:<name>``).

Every database: ``platform_db_up`` and ``platform_db_ping_duration_seconds``
(the configured ping query, ``SELECT 1`` by default). On PostgreSQL also
``platform_db_connections{state}`` (client backends of the whole server by
state, the usual states always present) and ``platform_db_max_connections``,
whose ratio the connection-saturation alert uses.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from exporter.collectors.base import CollectFailed, Collector
from exporter.databases import Database

PG_STATES = ("active", "idle", "idle in transaction", "idle in transaction (aborted)")
PG_CONNECTIONS = (
    "SELECT COALESCE(state, 'unknown') AS state, COUNT(*) AS n FROM pg_stat_activity "
    "WHERE backend_type = 'client backend' GROUP BY 1"
)
PG_MAX_CONNECTIONS = (
    "SELECT CAST(setting AS INTEGER) FROM pg_settings WHERE name = 'max_connections'"
)


def _up(database: str, value: float) -> GaugeMetricFamily:
    up = GaugeMetricFamily(
        "platform_db_up", "1 when the database answered the ping query.", labels=["database"]
    )
    up.add_metric([database], value)
    return up


class DatabaseHealth(Collector):
    def __init__(self, database: Database, ping_query: str, **schedule: float):
        super().__init__(f"database:{database.name}", **schedule)
        self.database = database
        self.ping = database.prepare(ping_query)
        if database.dialect == "postgresql":
            self.connections = database.prepare(PG_CONNECTIONS)
            self.max_connections = database.prepare(PG_MAX_CONNECTIONS)

    def collect(self) -> list[Metric]:
        name = self.database.name
        try:
            with self.database.connect(self.timeout) as conn:
                start = time.perf_counter()
                conn.execute(self.ping).fetchall()
                duration = time.perf_counter() - start
                # PostgreSQL only: client backends by state, and max_connections.
                server: tuple[dict[str, int], Any] | None = None
                if self.database.dialect == "postgresql":
                    states = dict.fromkeys(PG_STATES, 0)
                    states.update(conn.execute(self.connections).fetchall())
                    server = (states, conn.execute(self.max_connections).fetchone()[0])
        except Exception as exc:
            raise CollectFailed(self.database.describe(exc), [_up(name, 0.0)]) from None
        took = GaugeMetricFamily(
            "platform_db_ping_duration_seconds", "Duration of the ping query.", labels=["database"]
        )
        took.add_metric([name], duration)
        families: list[Metric] = [_up(name, 1.0), took]
        if server is not None:
            states, max_connections = server
            connections = GaugeMetricFamily(
                "platform_db_connections",
                "PostgreSQL client backends by state.",
                labels=["database", "state"],
            )
            for state, count in sorted(states.items()):
                connections.add_metric([name, state], float(count))
            limit = GaugeMetricFamily(
                "platform_db_max_connections", "PostgreSQL max_connections.", labels=["database"]
            )
            limit.add_metric([name], float(max_connections))
            families += [connections, limit]
        return families

    def timeout_families(self) -> list[Metric]:
        return [_up(self.database.name, 0.0)]
