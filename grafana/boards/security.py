"""Security: what the security monitor records and what the rate limits refuse."""

from __future__ import annotations

from grafana.board import Board
from grafana.panels import bargauge, query, stat, timeseries

FAILED_LOGINS = '{type=~"FAILED_AUTH|MULTIPLE_FAILED_LOGINS"}'


def per_minute(by: str | None, selector: str) -> str:
    """Events per minute of a counter, summed by the label ``by`` (or in total)."""
    total = f"sum by ({by}) " if by else "sum"
    return f"{total}(rate({selector}[$__rate_interval])) * 60"


def build(rules: dict) -> Board:
    board = Board(
        "partnerwatch-security",
        "Security",
        "Security events, failed logins and rate limits of the ticket API.",
        tags=["security"],
        rules=rules,
    )

    def last_hour(title: str, description: str, metric: str, legend: str) -> None:
        board.add(
            stat(
                title,
                description,
                "short",
                [query(f"sum(increase({metric}[1h]))", legend)],
                decimals=0,
            ),
            w=6,
            h=5,
        )

    last_hour(
        "Security events (1 h)",
        "Security events recorded in the last hour (security_events_total).",
        "security_events_total",
        "events",
    )
    last_hour(
        "Failed logins (1 h)",
        "FAILED_AUTH and MULTIPLE_FAILED_LOGINS events in the last hour.",
        f"security_events_total{FAILED_LOGINS}",
        "failed logins",
    )
    last_hour(
        "Rate-limit rejections (1 h)",
        "Requests refused with 429 in the last hour (ratelimit_rejections_total).",
        "ratelimit_rejections_total",
        "rejections",
    )
    last_hour(
        "Rate-limit backend errors (1 h)",
        "Redis errors of the rate limiter; limits fall back to per-process memory while "
        "they last (ratelimit_backend_errors_total).",
        "ratelimit_backend_errors_total",
        "errors",
    )

    board.add(
        timeseries(
            "Security events by type",
            "Events per minute by type.",
            "cpm",
            [query(per_minute("type", "security_events_total"), "{{type}}")],
            bars=True,
        ),
        w=12,
        h=8,
    )
    board.add(
        timeseries(
            "Security events by severity",
            "Events per minute by severity.",
            "cpm",
            [query(per_minute("severity", "security_events_total"), "{{severity}}")],
            stacked=True,
        ),
        w=12,
        h=8,
    )
    board.add(
        timeseries(
            "Failed logins",
            "Failed authentications and escalations to MULTIPLE_FAILED_LOGINS per minute.",
            "cpm",
            [query(per_minute("type", f"security_events_total{FAILED_LOGINS}"), "{{type}}")],
        ),
        w=12,
        h=8,
    )
    board.add(
        bargauge(
            "Rate-limit rejections in 5 m by action",
            "Requests refused with 429 in the last 5 minutes per action; "
            "RateLimitStorm fires above the threshold.",
            "short",
            [query("sum by (action) (increase(ratelimit_rejections_total[5m]))", "{{action}}")],
            thresholds=board.alerts("RateLimitStorm"),
        ),
        w=12,
        h=8,
    )
    board.add(
        timeseries(
            "Rate-limit rejections by action",
            "Requests refused with 429 per minute by action.",
            "cpm",
            [query(per_minute("action", "ratelimit_rejections_total"), "{{action}}")],
            stacked=True,
        ),
        w=12,
        h=8,
    )
    board.add(
        timeseries(
            "Rate-limit backend errors",
            "Redis errors of the rate limiter per minute.",
            "cpm",
            [query(per_minute(None, "ratelimit_backend_errors_total"), "backend errors")],
        ),
        w=12,
        h=8,
    )
    return board
