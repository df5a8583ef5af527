"""Outages, one at a time: each is reported by the self metrics, the rest keeps working.

A down API, a down Redis, a dead database and hung queries (a lock, a query
that never ends) are each seen through Prometheus as a failed collector with
growing ``exporter_collector_errors_total``, while other collectors keep
succeeding (their last-success timestamps keep advancing); a failed query's
series disappear after the staleness window; and everything recovers when
the outage ends.
"""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from tests.harness import HTTPSink, start_postgres
from tests.harness.exporter import SHIPPED_COLLECTORS, quicken, shipped_config
from tests.harness.platform_data import seed_platform, seed_ticketing

STUCK_SQLITE = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) AS n FROM c"
)
STUCK_POSTGRES = "SELECT 1 AS n FROM (SELECT pg_sleep(30)) AS s"


def success(collector: str) -> str:
    return f'exporter_collector_success{{collector="{collector}"}}'


def errors(collector: str) -> str:
    return f'exporter_collector_errors_total{{collector="{collector}"}}'


def keeps_reporting(prom, *collectors: str) -> None:
    """Each collector succeeds again after now: its last-success timestamp moves on."""
    expr = "exporter_collector_last_success_timestamp_seconds"
    before = prom.values(expr, "collector")

    def advanced(result) -> bool:
        now = {r["metric"]["collector"]: float(r["value"][1]) for r in result}
        return all(now.get(c, 0) > before.get(c, 0) for c in collectors)

    prom.wait_for(expr, advanced, timeout=30)
    for collector in collectors:
        assert prom.value(success(collector)) == 1, collector


def fails(prom, collector: str, repeatedly: bool = False) -> None:
    """The collector is reported failed (and, if ``repeatedly``, keeps failing on schedule)."""
    prom.wait_for_value(success(collector), 0, timeout=30)
    before = prom.value(errors(collector))
    assert before > 0
    if repeatedly:
        prom.wait_for(
            errors(collector), lambda r: r and float(r[0]["value"][1]) > before + 1, timeout=30
        )


def all_succeed(prom, exporter, count: int = SHIPPED_COLLECTORS) -> None:
    try:
        prom.wait_for_value("count(exporter_collector_success == 1)", count, timeout=30)
    except TimeoutError as exc:
        failing = {
            name: s["last_error"] for name, s in exporter.status().items() if not s["success"]
        }
        raise AssertionError(f"{exc}; failing now: {failing}") from None


def with_stuck_query(config: dict, database: str, sql: str) -> dict:
    config["queries"]["stuck"] = {
        "database": database,
        "interval": "500ms",
        "timeout": "300ms",
        "sql": sql,
        "metrics": [{"name": "test_stuck_rows", "help": "Never answers.", "value": "n"}],
    }
    return config


@pytest.fixture
def api():
    with HTTPSink() as sink:
        sink.responses["/healthz"] = (200, b'{"status": "ok"}')
        yield sink


def test_outages_on_sqlite(tmp_path, api, redis_factory, start_exporter, scrape):
    platform_dir = tmp_path / "platform"
    platform_dir.mkdir()
    platform_url = f"sqlite:///{platform_dir / 'platform.db'}"
    ticketing_path = tmp_path / "ticketing.db"
    seed_platform(platform_url)
    seed_ticketing(f"sqlite:///{ticketing_path}")
    redis = redis_factory()
    config = with_stuck_query(quicken(shipped_config()), "ticketing", STUCK_SQLITE)
    exporter = start_exporter(
        config,
        env={
            "PLATFORM_DB_URL": platform_url,
            "TICKETING_DB_URL": f"sqlite:///{ticketing_path}",
            "REDIS_URL": redis.url,
            "PLATFORM_API_URL": api.url,
        },
    )
    prom = scrape(exporter)
    all_succeed(prom, exporter)

    # A query that never ends is interrupted at its timeout, on every run.
    fails(prom, "query:stuck", repeatedly=True)
    assert prom.query("test_stuck_rows") == []
    assert (
        exporter.status()["query:stuck"]["last_error"]
        == "TimeoutError: query interrupted by the 0.3s timeout"
    )

    # Down API.
    api.stop()
    fails(prom, "http_probe:platform_api")
    assert prom.value('platform_api_probe_success{target="platform_api"}') == 0
    assert prom.value('platform_api_probe_http_status_code{target="platform_api"}') == 0
    keeps_reporting(prom, "query:energy_pool", "redis", "database:platform")
    api.start()
    prom.wait_for_value(success("http_probe:platform_api"), 1)
    prom.wait_for_value('platform_api_probe_success{target="platform_api"}', 1)

    # An unhealthy answer fails the probe too, with the status it got.
    api.responses["/healthz"] = (503, b'{"status": "degraded"}')
    prom.wait_for_value('platform_api_probe_http_status_code{target="platform_api"}', 503)
    assert prom.value(success("http_probe:platform_api")) == 0
    api.responses["/healthz"] = (200, b'{"status": "ok"}')
    prom.wait_for_value(success("http_probe:platform_api"), 1)

    # Down Redis.
    redis.kill()
    fails(prom, "redis")
    prom.wait_for_value("platform_redis_up", 0)
    keeps_reporting(prom, "query:energy_pool", "http_probe:platform_api")
    redis.start()
    prom.wait_for_value("platform_redis_up", 1)
    prom.wait_for_value(success("redis"), 1)

    # Dead database: its file is gone. Health says down; its queries fail and
    # their series disappear after the staleness window (3 s); the ticketing
    # database's collectors carry on.
    platform_dir.rename(tmp_path / "platform-away")
    fails(prom, "database:platform")
    prom.wait_for_value('platform_db_up{database="platform"}', 0)
    fails(prom, "query:energy_pool")
    keeps_reporting(prom, "query:support_outbox", "database:ticketing")
    prom.wait_for("platform_energy_pool_available_units", lambda r: r == [])
    assert prom.value("support_outbox_pending") == 3
    (tmp_path / "platform-away").rename(platform_dir)
    prom.wait_for_value('platform_energy_pool_available_units{pool="main"}', 250)
    prom.wait_for_value('platform_db_up{database="platform"}', 1)

    # Hung query: another process holds an exclusive lock on the ticketing
    # database; its queries give up at their timeout, the ping (which reads no
    # table) and the platform's collectors carry on.
    holder = sqlite3.connect(ticketing_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        fails(prom, "query:support_outbox")
        keeps_reporting(prom, "database:ticketing", "query:energy_pool")
        assert "locked" in exporter.status()["query:support_outbox"]["last_error"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    prom.wait_for_value(success("query:support_outbox"), 1)
    prom.wait_for_value("support_outbox_pending", 3)

    all_succeed(prom, exporter)


def test_outages_on_postgresql(postgres_server, redis_url, api, start_exporter, scrape):
    private = start_postgres()  # a server this test may kill
    try:
        platform_url = private.create_database()
        ticketing_url = postgres_server.create_database()
        seed_platform(platform_url)
        seed_ticketing(ticketing_url)
        config = with_stuck_query(quicken(shipped_config()), "platform", STUCK_POSTGRES)
        config["databases"]["platform"]["pool_size"] = 6
        exporter = start_exporter(
            config,
            env={
                "PLATFORM_DB_URL": platform_url,
                "TICKETING_DB_URL": ticketing_url,
                "REDIS_URL": redis_url,
                "PLATFORM_API_URL": api.url,
            },
        )
        prom = scrape(exporter)
        all_succeed(prom, exporter)

        # pg_sleep(30) is cancelled by the server's statement_timeout each run.
        fails(prom, "query:stuck", repeatedly=True)
        assert (
            exporter.status()["query:stuck"]["last_error"]
            == "QueryCanceled: canceling statement due to statement timeout"
        )

        # Hung query: a lock on energy_pools blocks its query until the timeout;
        # the ping and another query on the same database carry on.
        name = platform_url.rsplit("/", 1)[1]
        with psycopg.connect(private.dsn(name)) as holder:
            holder.execute("LOCK TABLE energy_pools IN ACCESS EXCLUSIVE MODE")
            fails(prom, "query:energy_pool")
            keeps_reporting(prom, "query:transactions", "database:platform")
            holder.rollback()
        prom.wait_for_value(success("query:energy_pool"), 1)

        # Dead database server, then back on the same port.
        private.kill()
        fails(prom, "database:platform")
        prom.wait_for_value('platform_db_up{database="platform"}', 0)
        fails(prom, "query:transactions")
        keeps_reporting(prom, "database:ticketing", "query:support_tickets")
        private.start()
        prom.wait_for_value('platform_db_up{database="platform"}', 1, timeout=60)
        prom.wait_for_value(success("query:transactions"), 1)
        prom.wait_for_value('platform_energy_pool_available_units{pool="main"}', 250)
    finally:
        private.cleanup()
