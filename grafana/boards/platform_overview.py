"""Platform overview: the partner platform's API, database, energy pool and transactions."""

from __future__ import annotations

from grafana.board import Board
from grafana.panels import UP_DOWN, gauge, query, stat, timeseries

TARGET = '{target=~"$target"}'
POOL = '{pool=~"$pool"}'
DATABASE = '{database=~"$database"}'
ENERGY_RATIO = f"platform:energy_pool_available:ratio{POOL}"


def build(rules: dict) -> Board:
    board = Board(
        "partnerwatch-platform",
        "Platform overview",
        "Platform API, database, energy pool, transactions and partners.",
        tags=["platform"],
        rules=rules,
    )
    board.variable("target", "API target", "platform_api_probe_success")
    board.variable("pool", "Energy pool", "platform_energy_pool_capacity_units")
    board.variable("database", "Database", "platform_db_up")
    energy = board.alerts("EnergyPoolLow", "EnergyPoolCritical")
    failures = board.alerts("TransactionFailureRatioHigh")

    # Row 1: the state at a glance.
    board.add(
        stat(
            "Platform API",
            "Last probe of each platform API health endpoint "
            "(platform_api_probe_success). PlatformApiDown fires after 1 m DOWN.",
            "none",
            [query(f"platform_api_probe_success{TARGET}", "{{target}}")],
            states=UP_DOWN,
        ),
        w=4,
        h=5,
    )
    board.add(
        stat(
            "Platform database",
            "Ping query on each platform database (platform_db_up).",
            "none",
            [query(f"platform_db_up{DATABASE}", "{{database}}")],
            states=UP_DOWN,
        ),
        w=4,
        h=5,
    )
    board.add(
        gauge(
            "Energy pool available",
            "Available / capacity per pool "
            "(platform:energy_pool_available:ratio). Orange below the warning threshold, "
            "red below the critical one: the same numbers as the EnergyPool alerts.",
            "percentunit",
            [query(ENERGY_RATIO, "{{pool}}")],
            thresholds=energy,
        ),
        w=5,
        h=5,
    )
    board.add(
        stat(
            "Active partners",
            "Partners with a transaction in the last 15 minutes (platform_partners_active).",
            "short",
            [query("platform_partners_active", "active partners")],
            sparkline=True,
        ),
        w=4,
        h=5,
    )
    board.add(
        stat(
            "Transaction failures (5 m)",
            "Failed / all transactions over 5 m "
            "(platform:transactions_failed:ratio_rate5m), coloured at the alert thresholds.",
            "percentunit",
            [query("platform:transactions_failed:ratio_rate5m", "failed")],
            thresholds=failures,
            decimals=1,
        ),
        w=7,
        h=5,
    )

    # API and energy pool over time.
    board.add(
        timeseries(
            "Platform API probe latency",
            "p50 / p95 / p99 of the probe duration "
            "over 5 m (platform:api_probe_duration_seconds:*). The line is the "
            "PlatformApiSlow threshold.",
            "s",
            [
                query(f"platform:api_probe_duration_seconds:{q}_5m{TARGET}", f"{{{{target}}}} {q}")
                for q in ("p50", "p95", "p99")
            ],
            thresholds=board.alerts("PlatformApiSlow"),
        ),
        w=12,
        h=8,
    )
    board.add(
        timeseries(
            "Platform API probe error ratio",
            "Share of failed probes over 5 m: 1 - avg_over_time(platform_api_probe_success[5m]).",
            "percentunit",
            [query(f"1 - avg_over_time(platform_api_probe_success{TARGET}[5m])", "{{target}}")],
            max_value=1,
        ),
        w=12,
        h=8,
    )
    board.add(
        timeseries(
            "Energy pool available over time",
            "Available / capacity per pool with the alert thresholds as lines.",
            "percentunit",
            [query(ENERGY_RATIO, "{{pool}}")],
            thresholds=energy,
            max_value=1,
        ),
        w=12,
        h=8,
    )
    board.add(
        timeseries(
            "Energy pool units",
            "Available and capacity units per pool.",
            "short",
            [
                query(f"platform_energy_pool_{kind}_units{POOL}", f"{{{{pool}}}} {kind}")
                for kind in ("available", "capacity")
            ],
        ),
        w=12,
        h=8,
    )

    # Transactions.
    board.add(
        timeseries(
            "Transactions by status",
            "Transactions per second by status over 5 m (platform:transactions:rate5m).",
            "ops",
            [query("platform:transactions:rate5m", "{{status}}")],
            stacked=True,
        ),
        w=12,
        h=8,
    )
    board.add(
        timeseries(
            "Transaction failure ratio",
            "Failed / all transactions over 5 m, with "
            "the warning and critical thresholds as lines.",
            "percentunit",
            [query("platform:transactions_failed:ratio_rate5m", "failed ratio")],
            thresholds=failures,
        ),
        w=12,
        h=8,
    )

    # The platform database.
    board.add(
        timeseries(
            "Database connections used",
            "Connections / max_connections per "
            "database (platform:db_connections:ratio, PostgreSQL only), with the "
            "PlatformDatabaseConnectionsNearMax thresholds as lines.",
            "percentunit",
            [query(f"platform:db_connections:ratio{DATABASE}", "{{database}}")],
            thresholds=board.alerts("PlatformDatabaseConnectionsNearMax"),
            max_value=1,
        ),
        w=8,
        h=8,
    )
    board.add(
        timeseries(
            "Database connections by state",
            "PostgreSQL backends by state (platform_db_connections).",
            "short",
            [
                query(
                    f"sum by (database, state) (platform_db_connections{DATABASE})",
                    "{{database}} {{state}}",
                )
            ],
            stacked=True,
        ),
        w=8,
        h=8,
    )
    board.add(
        timeseries(
            "Database ping",
            "Duration of the ping query (platform_db_ping_duration_seconds).",
            "s",
            [query(f"platform_db_ping_duration_seconds{DATABASE}", "{{database}}")],
        ),
        w=8,
        h=8,
    )

    board.add(
        timeseries(
            "Active partners over time",
            "Partners with a transaction in the last 15 minutes.",
            "short",
            [query("platform_partners_active", "active partners")],
        ),
        w=24,
        h=6,
    )

    # Per partner (every partner, within the exporter's series budget: docs/metrics.md).
    board.add(
        timeseries(
            "Transaction failure ratio by partner (top 10)",
            "Failed / all transactions over 5 m for the ten partners failing most "
            "(partner:transactions_failed:ratio_rate5m); the line is the "
            "PartnerTransactionFailureRatioHigh threshold, which notifies the "
            "partner's own webhooks.",
            "percentunit",
            [query("topk(10, partner:transactions_failed:ratio_rate5m)", "partner {{partner}}")],
            thresholds=board.alerts("PartnerTransactionFailureRatioHigh"),
            max_value=1,
        ),
        w=12,
        h=8,
    )
    board.add(
        timeseries(
            "Energy drawn by partner (top 10)",
            "Energy units drawn per hour by the ten partners drawing most "
            "(partner:energy_drawn_units:rate5m * 3600).",
            "short",
            [query("topk(10, partner:energy_drawn_units:rate5m * 3600)", "partner {{partner}}")],
        ),
        w=12,
        h=8,
    )
    return board
