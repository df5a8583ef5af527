"""Operations: every function profiled with ``exporter.profiler.profile``."""

from __future__ import annotations

from grafana.board import Board
from grafana.panels import query, table, timeseries

OPERATION = '{operation=~"$operation"}'


def rate(metric: str, window: str = "$__rate_interval") -> str:
    return f"sum by (operation) (rate({metric}{OPERATION}[{window}]))"


def increase(metric: str) -> str:
    return f"sum by (operation) (increase({metric}{OPERATION}[5m]))"


def mean(window: str) -> str:
    return (
        f"{rate('operation_duration_seconds_sum', window)} / "
        f"{rate('operation_duration_seconds_count', window)}"
    )


def quantile(q: str) -> str:
    return f"operation:operation_duration_seconds:{q}_5m{OPERATION}"


def build(rules: dict) -> Board:
    board = Board(
        "partnerwatch-operations",
        "Operations",
        "Profiled operations: call rate, duration quantiles, errors and slow calls.",
        tags=["profiler"],
        rules=rules,
    )
    board.variable("operation", "Operation", "operation_duration_seconds_count")

    def per_operation(title: str, description: str, unit: str, expr: str, w: int) -> None:
        board.add(timeseries(title, description, unit, [query(expr, "{{operation}}")]), w=w, h=8)

    per_operation(
        "Calls by operation",
        "Profiled calls per second (operation_duration_seconds_count).",
        "ops",
        rate("operation_duration_seconds_count"),
        12,
    )
    per_operation(
        "Mean duration by operation",
        "Mean duration of profiled calls.",
        "s",
        mean("$__rate_interval"),
        12,
    )
    for q in ("p50", "p95", "p99"):
        per_operation(
            f"Duration {q} by operation",
            f"{q} of profiled calls over 5 m (operation:operation_duration_seconds:{q}_5m).",
            "s",
            quantile(q),
            8,
        )
    per_operation(
        "Errors by operation",
        "Profiled calls that raised, per second (operation_errors_total).",
        "ops",
        rate("operation_errors_total"),
        12,
    )
    per_operation(
        "Slow calls by operation",
        "Profiled calls over the slow threshold (1 s by default), per second "
        "(operation_slow_total).",
        "ops",
        rate("operation_slow_total"),
        12,
    )
    board.add(
        table(
            "Operations over the last 5 minutes",
            "One row per operation: calls, mean, p50 / p95 / p99, errors and slow calls over 5 m.",
            "s",
            "operation",
            {
                "calls": increase("operation_duration_seconds_count"),
                "mean": mean("5m"),
                "p50": quantile("p50"),
                "p95": quantile("p95"),
                "p99": quantile("p99"),
                "errors": increase("operation_errors_total"),
                "slow": increase("operation_slow_total"),
            },
            column_units={"calls": "short", "errors": "short", "slow": "short"},
            sort_by="calls",
        ),
        w=24,
        h=9,
    )
    return board
