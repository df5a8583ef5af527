"""The shipped config against real databases, Redis and an HTTP API, scraped by Prometheus.

Runs the real exporter process with the shipped queries (only their timing
shortened) on SQLite and on PostgreSQL, reads every value back through
Prometheus' HTTP API, and lints /metrics with ``promtool check metrics``.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.harness import HTTPSink
from tests.harness.exporter import SHIPPED_COLLECTORS, quicken, shipped_config
from tests.harness.platform_data import execute, seed_platform, seed_ticketing, utcnow

HEALTHY = (200, b'{"status": "ok"}')


def seed_partner_events(url: str) -> None:
    """Partner webhook rows: one due since a known time, one later, one delivered and
    one claimed (older, but neither is due)."""
    import datetime as dt

    from sqlalchemy import create_engine, insert

    from tests.harness.platform_data import outbox_messages

    due = dt.datetime(2024, 5, 1, 9, 0, 0)
    old = due - dt.timedelta(days=1)
    claimed_until = utcnow() + dt.timedelta(hours=1)
    rows = [
        (f"webhook:1:evt_{i}", next_at, delivered)
        for i, (next_at, delivered) in enumerate(
            [(due, None), (due + dt.timedelta(hours=1), None), (old, old), (claimed_until, None)]
        )
    ]
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            insert(outbox_messages),
            [
                {
                    "kind": "partner_webhook",
                    "dedup_key": key,
                    "payload": {},
                    "created_at": old,
                    "attempts": 1,
                    "next_attempt_at": next_at,
                    "delivered_at": delivered,
                }
                for key, next_at, delivered in rows
            ],
        )
    engine.dispose()


@pytest.fixture
def api():
    """The platform API's health endpoint, as a local HTTP server."""
    with HTTPSink() as sink:
        sink.responses["/healthz"] = HEALTHY
        yield sink


def ticketing_url(db_url: str, request, tmp_path) -> str:
    if db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'ticketing.db'}"
    return request.getfixturevalue("postgres_server").create_database()


def promtool_check(text: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )


def test_shipped_config_end_to_end(
    db_url, request, tmp_path, redis_url, api, start_exporter, scrape
):
    ticketing = ticketing_url(db_url, request, tmp_path)
    seed_platform(db_url)
    seed_ticketing(ticketing)
    seed_partner_events(ticketing)
    config = quicken(shipped_config())
    config["collectors"]["http_probe"]["targets"]["platform_api"]["body_regex"] = (
        r'"status":\s*"ok"'
    )
    exporter = start_exporter(
        config,
        env={
            "PLATFORM_DB_URL": db_url,
            "TICKETING_DB_URL": ticketing,
            "REDIS_URL": redis_url,
            "PLATFORM_API_URL": api.url,
        },
    )
    prom = scrape(exporter)

    prom.wait_for_value("count(exporter_collector_success == 1)", SHIPPED_COLLECTORS)
    expected = {
        'platform_energy_pool_available_units{pool="main"}': 250,
        'platform_energy_pool_capacity_units{pool="main"}': 1000,
        'platform_transactions_total{status="completed"}': 3,
        'platform_transactions_total{status="failed"}': 1,
        'platform_transactions_total{status="pending"}': 1,
        "platform_partners_active": 2,
        'support_tickets{status="open",priority="high"}': 2,
        'support_tickets{status="resolved",priority="low"}': 1,
        'support_tickets{status="closed",priority="critical"}': 0,
        "count(support_tickets)": 16,
        'support_tickets_first_response_overdue{priority="high"}': 1,
        'support_tickets_first_response_overdue{priority="low"}': 0,
        'support_tickets_unassigned{priority="high"}': 2,
        'support_tickets_unassigned{priority="low"}': 0,
        "support_outbox_pending": 3,
        # Due since 2024-05-01T09:00:00Z; the older rows are delivered or claimed.
        "partner_webhook_oldest_due_timestamp_seconds": 1714554000,
        # Per partner (every partner; the seed has three): settled transactions,
        # energy drawn by the completed ones, open tickets.
        'platform_partner_transactions_total{partner="1",status="completed"}': 2,
        'platform_partner_transactions_total{partner="1",status="failed"}': 0,
        'platform_partner_transactions_total{partner="2",status="failed"}': 1,
        'platform_partner_transactions_total{partner="2",status="completed"}': 0,
        'platform_partner_transactions_total{partner="3",status="completed"}': 1,
        "count(platform_partner_transactions_total)": 6,
        'exporter_query_series{collector="query:partner_transactions"}': 9,
        'exporter_query_series_dropped{collector="query:partner_transactions"}': 0,
        'platform_partner_energy_drawn_units_total{partner="1"}': 10,
        'platform_partner_energy_drawn_units_total{partner="2"}': 0,
        'platform_partner_energy_drawn_units_total{partner="3"}': 5,
        'support_partner_tickets_open{partner="1"}': 2,
        "count(support_partner_tickets_open)": 1,
        'platform_db_up{database="platform"}': 1,
        'platform_db_up{database="ticketing"}': 1,
        "platform_redis_up": 1,
        'platform_api_probe_success{target="platform_api"}': 1,
        'platform_api_probe_http_status_code{target="platform_api"}': 200,
        "sum(exporter_collector_errors_total)": 0,
    }
    for expr, value in expected.items():
        assert prom.value(expr) == value, expr
    for expr in (
        'platform_db_ping_duration_seconds{database="platform"}',
        "platform_redis_ping_duration_seconds",
        'platform_api_probe_duration_seconds{target="platform_api"}',
        'exporter_collector_duration_seconds{collector="query:energy_pool"}',
    ):
        assert prom.value(expr) > 0, expr
    assert (
        prom.value(
            "time() - exporter_collector_last_success_timestamp_seconds"
            '{collector="query:support_outbox"}'
        )
        < 60
    )
    assert api.received("/healthz")  # the probe really went over HTTP

    if db_url.startswith("postgresql"):
        assert prom.value('platform_db_max_connections{database="platform"}') == 200
        states = prom.values('platform_db_connections{database="platform"}', "state")
        assert {"active", "idle", "idle in transaction"} <= set(states)
        assert states["active"] >= 1  # at least the exporter's own query
    else:
        assert prom.query("platform_db_max_connections") == []

    # Values follow the database.
    execute(db_url, "UPDATE energy_pools SET available_units = 100")
    execute(
        db_url,
        "INSERT INTO transactions (partner_id, status, amount_units, created_at) "
        "VALUES (3, 'completed', 1, :now)",
        now=utcnow(),
    )
    prom.wait_for_value('platform_energy_pool_available_units{pool="main"}', 100)
    prom.wait_for_value('platform_transactions_total{status="completed"}', 4)
    prom.wait_for_value("platform_partners_active", 3)

    text = exporter.metrics()
    lint = promtool_check(text)
    assert lint.returncode == 0 and lint.stdout + lint.stderr == "", lint.stdout + lint.stderr
    assert "# TYPE platform_transactions_total counter" in text
    assert text.count("# TYPE platform_db_up gauge") == 1  # two databases, one family


def test_two_prometheus_replicas_cause_no_extra_queries(tmp_path, start_exporter, scrape):
    """A query that runs once an hour runs once, however often it is scraped."""
    db_url = f"sqlite:///{tmp_path / 'platform.db'}"
    seed_platform(db_url)
    config = shipped_config()
    config = {
        "exporter": {"staleness": "2h"},
        "databases": {"platform": {"url": db_url}},
        "queries": {"energy_pool": {**config["queries"]["energy_pool"], "interval": "1h"}},
    }
    exporter = start_exporter(config)
    replicas = [scrape(exporter), scrape(exporter)]
    for prom in replicas:
        prom.wait_for_value('platform_energy_pool_available_units{pool="main"}', 250)
    execute(db_url, "UPDATE energy_pools SET available_units = 100")
    for prom in replicas:
        prom.wait_for(
            'count_over_time(up{job="exporter"}[1h])', lambda r: r and float(r[0]["value"][1]) >= 6
        )
        assert prom.value('platform_energy_pool_available_units{pool="main"}') == 250
    assert exporter.status()["query:energy_pool"]["runs"] == 1
