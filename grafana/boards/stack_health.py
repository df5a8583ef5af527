"""Stack health: Prometheus' targets, the exporter's collectors, Redis, outbox, Alertmanager."""

from __future__ import annotations

from grafana.board import Board
from grafana.panels import OK_FAILING, UP_DOWN, query, stat, timeseries


def per_second(by: str, metric: str) -> str:
    return f"sum by ({by}) (rate({metric}[$__rate_interval]))"


def build(rules: dict) -> Board:
    board = Board(
        "partnerwatch-stack",
        "Stack health",
        "Scrape targets, exporter collectors, Redis, outbox and Alertmanager notifications.",
        tags=["stack"],
        rules=rules,
    )
    board.variable("job", "Job", "up")

    board.add(
        stat(
            "Scrape targets",
            "Every target Prometheus scrapes (up).",
            "none",
            [query('up{job=~"$job"}', "{{job}} {{instance}}")],
            states=UP_DOWN,
        ),
        w=12,
        h=5,
    )
    board.add(
        stat(
            "Exporter collectors",
            "Last run of each exporter collector (exporter_collector_success).",
            "none",
            [query("exporter_collector_success", "{{collector}}")],
            states=OK_FAILING,
        ),
        w=12,
        h=5,
    )
    board.add(
        stat(
            "Redis",
            "PING from the exporter (platform_redis_up).",
            "none",
            [query("platform_redis_up", "redis")],
            states=UP_DOWN,
        ),
        w=4,
        h=5,
    )
    board.add(
        stat(
            "Outbox pending",
            "Notifications in ticketing's outbox not yet delivered to "
            "Alertmanager (support_outbox_pending).",
            "short",
            [query("support_outbox_pending", "pending")],
        ),
        w=4,
        h=5,
    )
    board.add(
        stat(
            "Alertmanager notifications failed (1 h)",
            "Failed notification attempts by "
            "Alertmanager in the last hour (alertmanager_notifications_failed_total).",
            "short",
            [query("sum(increase(alertmanager_notifications_failed_total[1h]))", "failed")],
            decimals=0,
        ),
        w=8,
        h=5,
    )
    board.add(
        stat(
            "Rule evaluation failures (1 h)",
            "Failed rule evaluations in Prometheus (prometheus_rule_evaluation_failures_total).",
            "short",
            [query("sum(increase(prometheus_rule_evaluation_failures_total[1h]))", "failures")],
            decimals=0,
        ),
        w=8,
        h=5,
    )

    for title, description, unit, expr in [
        (
            "Collector duration",
            "Duration of each collector's last run (exporter_collector_duration_seconds).",
            "s",
            "exporter_collector_duration_seconds",
        ),
        (
            "Time since last collector success",
            "Seconds since each collector last succeeded "
            "(exporter_collector_last_success_timestamp_seconds).",
            "s",
            "time() - exporter_collector_last_success_timestamp_seconds",
        ),
        (
            "Collector errors",
            "Failed collector runs per second (exporter_collector_errors_total).",
            "ops",
            per_second("collector", "exporter_collector_errors_total"),
        ),
    ]:
        board.add(timeseries(title, description, unit, [query(expr, "{{collector}}")]), w=8, h=8)

    for title, what, metric in [
        (
            "Alertmanager notifications sent",
            "Notifications sent",
            "alertmanager_notifications_total",
        ),
        (
            "Alertmanager notifications failed",
            "Failed notifications",
            "alertmanager_notifications_failed_total",
        ),
    ]:
        board.add(
            timeseries(
                title,
                f"{what} per second by integration ({metric}).",
                "ops",
                [query(per_second("integration", metric), "{{integration}}")],
            ),
            w=12,
            h=8,
        )
    board.add(
        timeseries(
            "Outbox deliveries",
            "Ticketing notifications accepted by Alertmanager "
            "and failed attempts, per second (notifications_delivered_total, "
            "notifications_failed_total).",
            "ops",
            [
                query(
                    per_second("kind", f"notifications_{outcome}_total"), f"{{{{kind}}}} {outcome}"
                )
                for outcome in ("delivered", "failed")
            ],
        ),
        w=12,
        h=8,
    )
    board.add(
        timeseries(
            "Scrape duration",
            "Time each scrape took (scrape_duration_seconds).",
            "s",
            [query('scrape_duration_seconds{job=~"$job"}', "{{job}} {{instance}}")],
        ),
        w=12,
        h=8,
    )
    return board
