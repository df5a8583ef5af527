"""The collectors, and :func:`build_collectors` which makes them from a config.

Collector names (the ``collector`` label of the self metrics):
``http_probe:<target>``, ``database:<name>``, ``redis``, ``query:<name>``.

Each collector's module (and the client it uses) is imported only when the
configuration enables that collector: the process holds what it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from exporter.collectors.base import CollectFailed, Collector
from exporter.schema import Config, Schedule

if TYPE_CHECKING:
    from exporter.databases import Database

__all__ = ["CollectFailed", "Collector", "build_collectors", "used_databases"]


def _schedule(section: Schedule, config: Config, timeout: float | None = None) -> dict[str, float]:
    return {
        "interval": section.interval,
        "timeout": timeout if timeout is not None else section.run_timeout,
        "staleness": section.staleness or config.exporter.staleness,
    }


def used_databases(config: Config) -> list[str]:
    """Names of the databases some enabled collector or query needs."""
    names: set[str] = set()
    health = config.collectors.database
    if health is not None and health.enabled:
        names.update(health.databases if health.databases is not None else config.databases)
    names.update(q.database for q in config.queries.values() if q.enabled)
    return sorted(names)


def build_collectors(config: Config, databases: dict[str, Database]) -> list[Collector]:
    """One collector per probe target, database, Redis and enabled query."""
    collectors: list[Collector] = []
    probe = config.collectors.http_probe
    if probe is not None and probe.enabled:
        from exporter.collectors.http_probe import HttpProbe

        for name, target in probe.targets.items():
            schedule = _schedule(probe, config)
            if target.timeout is not None:
                schedule["timeout"] = target.timeout
            collectors.append(HttpProbe(name, target, **schedule))
    health = config.collectors.database
    if health is not None and health.enabled:
        from exporter.collectors.database_health import DatabaseHealth

        names = health.databases if health.databases is not None else sorted(config.databases)
        for name in names:
            collectors.append(
                DatabaseHealth(databases[name], health.ping_query, **_schedule(health, config))
            )
    cache = config.collectors.redis
    if cache is not None and cache.enabled:
        from exporter.collectors.redis_health import RedisHealth

        collectors.append(RedisHealth(cache, **_schedule(cache, config)))
    for name, query in config.queries.items():
        if query.enabled:
            from exporter.collectors.incremental import IncrementalQuery
            from exporter.collectors.sql_metrics import SqlQuery

            cls = IncrementalQuery if query.incremental is not None else SqlQuery
            collectors.append(
                cls(name, query, databases[query.database], **_schedule(query, config))
            )
    return collectors
