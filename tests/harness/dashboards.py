"""Read the provisioned Grafana dashboards the way Grafana would, for the tests.

``dashboards()`` loads every ``grafana/dashboards/*.json``; ``panels(dash)``
walks its panels (rows included); ``panel_queries()`` yields one
:class:`PanelQuery` per query target with the PromQL that Grafana would send,
its template variables replaced by what "All" selects:

    for q in panel_queries():
        prom.query(q.promql)          # e.g. up{job=~".*"}

Grafana's built-in interval variables become fixed durations that suit a
Prometheus scraping every second.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from grafana.thresholds import SEVERITY_COLORS

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
DATASOURCES = GRAFANA / "provisioning" / "datasources"
PROVIDERS = GRAFANA / "provisioning" / "dashboards"

# What Grafana substitutes for its built-in variables, scaled to tests that
# scrape every second and run for a minute or two.
BUILTIN_VARIABLES = {
    "__rate_interval": "30s",
    "__interval": "5s",
    "__range": "2m",
}

# $name, ${name}, ${name:format} and [[name]]
VARIABLE_RE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str  # dashboard uid
    panel: str  # panel title
    ref_id: str
    expr: str  # as written in the dashboard
    promql: str  # what Grafana sends when every variable is "All"
    instant: bool

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}"


def dashboards() -> dict[Path, dict]:
    return {path: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(dash: dict) -> Iterator[dict]:
    for panel in dash.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows keep their panels inside


def variables(dash: dict) -> dict[str, dict]:
    return {v["name"]: v for v in dash.get("templating", {}).get("list", [])}


def variable_names(expr: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in VARIABLE_RE.finditer(expr)}


def substitute(expr: str, dash: dict) -> str:
    """The query Grafana sends with every template variable set to "All"."""
    defined = variables(dash)

    def replace(match: re.Match) -> str:
        name = next(g for g in match.groups() if g)
        if name in BUILTIN_VARIABLES:
            return BUILTIN_VARIABLES[name]
        if name in defined:
            return defined[name].get("allValue") or ".*"
        raise KeyError(f"undefined variable ${name} in {expr!r}")

    return VARIABLE_RE.sub(replace, expr)


def panel_queries() -> Iterator[PanelQuery]:
    for dash in dashboards().values():
        for panel in panels(dash):
            for target in panel.get("targets", []):
                expr = target.get("expr", "")
                yield PanelQuery(
                    dash["uid"],
                    panel.get("title", ""),
                    target.get("refId", ""),
                    expr,
                    substitute(expr, dash),
                    bool(target.get("instant")) and not target.get("range"),
                )


def variable_queries() -> Iterator[tuple[str, str, str, str]]:
    """(dashboard uid, variable name, metric, label) of each ``label_values`` variable."""
    for dash in dashboards().values():
        for name, var in variables(dash).items():
            query = var.get("query")
            if isinstance(query, dict):
                query = query.get("query", "")
            match = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*", query or "")
            if match:
                yield dash["uid"], name, match.group(1), match.group(2)


def threshold_mismatch(dash: dict, panel: dict, rules: dict[str, list[dict]]) -> str | None:
    """How a panel's threshold steps differ from the alert rules behind it, or None."""
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    if steps[0]["value"] is not None:
        return "the first step is not the base step"
    values = [s["value"] for s in steps[1:]]
    if values != sorted(values):
        return f"steps {values} are not in order"
    alert_names = THRESHOLD_ALERTS.get((dash["uid"], panel["title"]))
    if alert_names is None:
        # A panel without an alert behind it must not invent thresholds.
        return f"thresholds {values} with no alert rule behind them" if values else None
    expected = {}
    for name in alert_names:
        if name not in rules:
            return f"alert {name} is not in rules/"
        for rule in rules[name]:
            op, value = alert_threshold(rule)
            expected[value] = (op, rule["labels"]["severity"])
    if sorted(values) != sorted(expected):
        return f"panel thresholds {values} != alert thresholds {sorted(expected)}"
    for index, step in enumerate(steps[1:], start=1):
        op, severity = expected[step["value"]]
        # "x > t": values from t up take the alert's colour; "x < t": values below t do.
        coloured = step if op.startswith(">") else steps[index - 1]
        if coloured["color"] != SEVERITY_COLORS[severity]:
            return f"{step['value']} ({severity}) coloured {coloured['color']}"
    if (
        panel["type"] == "timeseries"
        and panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "off"
    ):
        return "thresholds are not drawn"
    return None


# Which alerts set the thresholds of which panel: (dashboard uid, panel title) -> alert names.
# The numbers come from the rule files; an alert name may have several rules (a warning
# and a critical one with the same name), each adds its threshold.
THRESHOLD_ALERTS = {
    ("partnerwatch-platform", "Energy pool available"): ["EnergyPoolLow", "EnergyPoolCritical"],
    ("partnerwatch-platform", "Energy pool available over time"): [
        "EnergyPoolLow",
        "EnergyPoolCritical",
    ],
    ("partnerwatch-platform", "Platform API probe latency"): ["PlatformApiSlow"],
    ("partnerwatch-platform", "Transaction failures (5 m)"): ["TransactionFailureRatioHigh"],
    ("partnerwatch-platform", "Transaction failure ratio"): ["TransactionFailureRatioHigh"],
    ("partnerwatch-platform", "Database connections used"): ["PlatformDatabaseConnectionsNearMax"],
    ("partnerwatch-support", "Ticket API 5xx ratio"): ["TicketingHighErrorRate"],
    ("partnerwatch-security", "Rate-limit rejections in 5 m by action"): ["RateLimitStorm"],
    ("partnerwatch-platform", "Transaction failure ratio by partner (top 10)"): [
        "PartnerTransactionFailureRatioHigh"
    ],
    ("partnerwatch-support", "Partner webhook failure ratio"): ["PartnerWebhookDeliveryFailing"],
}


def alert_threshold(rule: dict) -> tuple[str, float]:
    """The comparison of an alert expression with its threshold: ``('<', 0.2)``.

    Comparisons with 0 (guards such as ``capacity > 0``) are not thresholds.
    """
    found = [(op, float(num)) for op, num in COMPARISON_RE.findall(rule["expr"]) if float(num) != 0]
    assert len(found) == 1, f"{rule['alert']}: expected one threshold in {rule['expr']!r}"
    return found[0]


COMPARISON_RE = re.compile(r"(<=|>=|<|>)\s*(?:bool\s+)?(-?\d+(?:\.\d+)?(?:e-?\d+)?)(?![\w.])")
