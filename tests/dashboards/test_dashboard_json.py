"""The dashboard files and Grafana's provisioning, checked without Grafana.

Grafana loads what it is given and shows a broken panel instead of failing,
so these tests catch what would only show in a browser: a datasource uid that
does not match the provisioned one, overlapping panels, a panel without a unit,
a variable that is never defined, a metric name that is not in
docs/metrics.md, and thresholds that drifted away from the alert rules. The
thresholds are read from the rule expressions in ``rules/*.rules.yml``, so a
change of an alert threshold fails here until the dashboards follow.
"""
from __future__ import annotations

import re

import pytest
import yaml

from tests.dashboards.dashboard_files import (DATASOURCES, PROVIDERS, ROOT,
                                              dashboards, panels, panel_queries, variable_names,
                                              variables)

DASHBOARD_FILES = dashboards()

# Grafana unit ids the dashboards may use (a typo shows as a raw number in Grafana).
KNOWN_UNITS = {"s", "ms", "percentunit", "short", "none", "ops", "cpm", "reqps"}

# Panel types that show data and must carry a unit; rows and text panels do not.
DATA_PANEL_TYPES = {"timeseries", "stat", "gauge", "bargauge", "table", "barchart", "piechart",
                    "state-timeline", "status-history", "heatmap"}

# Which alerts set the thresholds of which panel: (dashboard uid, panel title) -> alert names.
# The numbers come from the rule files; an alert name may have several rules (a warning
# and a critical one with the same name), each adds its threshold.
THRESHOLD_ALERTS = {
    ("partnerwatch-platform", "Energy pool available"): ["EnergyPoolLow", "EnergyPoolCritical"],
    ("partnerwatch-platform", "Energy pool available over time"):
        ["EnergyPoolLow", "EnergyPoolCritical"],
    ("partnerwatch-platform", "Platform API probe latency"): ["PlatformApiSlow"],
    ("partnerwatch-platform", "Transaction failures (5 m)"): ["TransactionFailureRatioHigh"],
    ("partnerwatch-platform", "Transaction failure ratio"): ["TransactionFailureRatioHigh"],
    ("partnerwatch-platform", "Database connections used"): ["PlatformDatabaseConnectionsNearMax"],
    ("partnerwatch-support", "Ticket API 5xx ratio"): ["TicketingHighErrorRate"],
    ("partnerwatch-security", "Rate-limit rejections in 5 m by action"): ["RateLimitStorm"],
}

# The colour a threshold step takes for the severity of the alert it mirrors.
SEVERITY_COLORS = {"warning": "orange", "critical": "red"}

# Metrics that are not ours (Prometheus' own and Alertmanager's), used by the stack dashboard.
EXTERNAL_METRICS = {"up", "scrape_duration_seconds", "alertmanager_notifications_total",
                    "alertmanager_notifications_failed_total",
                    "prometheus_rule_evaluation_failures_total"}

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
                "unless", "bool", "offset", "inf", "nan"}


def _all_panels():
    for path, dash in DASHBOARD_FILES.items():
        for panel in panels(dash):
            yield pytest.param(dash, panel, id=f"{path.stem}/{panel.get('title')}")


def data_panels() -> list:
    return [param for param in _all_panels() if param.values[1].get("type") in DATA_PANEL_TYPES]


def provisioned_datasource(name: str = "prometheus") -> dict:
    """The datasource of ``grafana/provisioning/datasources/<name>.yml`` (one per file)."""
    config = yaml.safe_load((DATASOURCES / f"{name}.yml").read_text())
    [datasource] = config["datasources"]
    return datasource


def walk_datasources(node):
    """Every ``datasource`` reference anywhere in a dashboard."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            else:
                yield from walk_datasources(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_datasources(item)


# ------------------------------------------------------------------ provisioning

def test_datasource_provisioning_is_valid():
    files = sorted(DATASOURCES.glob("*.yml"))
    assert [p.name for p in files] == ["prometheus.yml", "victoriametrics.yml"]
    for path in files:
        assert yaml.safe_load(path.read_text())["apiVersion"] == 1, path
    # VictoriaMetrics (profile ha) speaks the Prometheus query API, never the default.
    vm = provisioned_datasource("victoriametrics")
    assert (vm["type"], vm["uid"], vm["access"]) == ("prometheus", "victoriametrics", "proxy")
    assert vm["url"] == "${VICTORIAMETRICS_URL}" and vm["isDefault"] is False
    datasource = provisioned_datasource()
    assert datasource["type"] == "prometheus"
    assert datasource["uid"] == "prometheus"
    assert datasource["access"] == "proxy"
    assert datasource["url"] == "${PROMETHEUS_URL}", "the URL comes from Grafana's environment"
    assert datasource["isDefault"] is True


def test_datasource_interval_matches_prometheus_scrape_interval():
    """Grafana's $__rate_interval is derived from timeInterval: it must be the real one."""
    prometheus_yml = ROOT / "prometheus" / "prometheus.yml"
    scrape = yaml.safe_load(prometheus_yml.read_text())["global"]["scrape_interval"]
    assert provisioned_datasource()["jsonData"]["timeInterval"] == scrape


def test_dashboard_provider_is_valid():
    [path] = PROVIDERS.glob("*.yml")
    config = yaml.safe_load(path.read_text())
    assert config["apiVersion"] == 1
    [provider] = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "${PARTNERWATCH_DASHBOARDS_DIR}"
    assert provider["allowUiUpdates"] is False
    assert provider["disableDeletion"] is True


# ------------------------------------------------------------------ dashboards

def test_there_are_the_five_dashboards():
    titles = {d["title"] for d in DASHBOARD_FILES.values()}
    assert titles == {"partnerwatch / Platform overview", "partnerwatch / Support",
                      "partnerwatch / Security", "partnerwatch / Operations",
                      "partnerwatch / Stack health"}


def test_uids_are_fixed_and_unique():
    uids = [d.get("uid") for d in DASHBOARD_FILES.values()]
    assert all(isinstance(u, str) and re.fullmatch(r"[a-z0-9-]{1,40}", u) for u in uids), uids
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_dashboard_settings(path):
    dash = DASHBOARD_FILES[path]
    assert "id" in dash and dash["id"] is None, "a provisioned dashboard has id null"
    assert 36 <= dash["schemaVersion"] <= 41, "Grafana 10/11 schema"
    assert dash["refresh"] in ("5s", "10s"), "the state updates in real time"
    assert "partnerwatch" in dash["tags"]
    assert dash["editable"] is False, "changes go through the repository"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_every_datasource_is_the_provisioned_one(path):
    uid = provisioned_datasource()["uid"]
    dash = DASHBOARD_FILES[path]
    refs = list(walk_datasources(dash.get("panels", []))) + list(
        walk_datasources(dash.get("templating", {})))
    assert refs, "panels name their datasource"
    for ref in refs:
        assert ref == {"type": "prometheus", "uid": uid}, ref
    for panel in panels(dash):
        if panel.get("type") in DATA_PANEL_TYPES:
            assert panel.get("datasource") == {"type": "prometheus", "uid": uid}, panel["title"]
            for target in panel["targets"]:
                assert target.get("datasource") == {"type": "prometheus", "uid": uid}


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_panels_do_not_overlap_and_fit_the_grid(path):
    boxes = []
    for panel in panels(DASHBOARD_FILES[path]):
        pos = panel["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["y"] >= 0
        assert pos["x"] + pos["w"] <= 24, f"{panel['title']} is wider than the grid"
        for other_title, other in boxes:
            overlap = (pos["x"] < other["x"] + other["w"] and other["x"] < pos["x"] + pos["w"]
                       and pos["y"] < other["y"] + other["h"] and other["y"] < pos["y"] + pos["h"])
            assert not overlap, f"{panel['title']!r} overlaps {other_title!r}"
        boxes.append((panel["title"], pos))


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_panel_ids_and_titles_are_unique(path):
    found = list(panels(DASHBOARD_FILES[path]))
    ids = [p["id"] for p in found]
    titles = [p["title"] for p in found]
    assert len(set(ids)) == len(ids)
    assert len(set(titles)) == len(titles), "titles name panels in tests and links"


@pytest.mark.parametrize(("dash", "panel"), data_panels())
def test_every_panel_has_a_unit_and_queries(dash, panel):
    unit = panel["fieldConfig"]["defaults"].get("unit")
    assert unit in KNOWN_UNITS, f"unit {unit!r}"
    assert panel.get("description"), "a description says what the panel shows"
    targets = panel.get("targets", [])
    assert targets and all(t.get("expr", "").strip() for t in targets)
    ref_ids = [t["refId"] for t in targets]
    assert len(set(ref_ids)) == len(ref_ids)


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_template_variables_are_defined_used_and_matched_by_regex(path):
    dash = DASHBOARD_FILES[path]
    defined = variables(dash)
    used: set[str] = set()
    for panel in panels(dash):
        for target in panel.get("targets", []):
            expr = target["expr"]
            names = {n for n in variable_names(expr) if not n.startswith("__")}
            assert names <= set(defined), f"undefined variables in {expr}"
            used |= names
            # "All" is a regex (.*), so a variable may only appear in a =~ matcher.
            for name in names:
                for match in re.finditer(rf"(\w+)\s*(=~|!~|=|!=)\s*\"[^\"]*\${name}\b", expr):
                    assert match.group(2) == "=~", f"${name} outside a =~ matcher in {expr}"
    assert used == set(defined), f"unused variables: {set(defined) - used}"
    for var in defined.values():
        assert var["includeAll"] and var["allValue"] == ".*"


def documented_metrics() -> set[str]:
    """Metric and recording-rule names in docs/metrics.md, histogram series included."""
    text = (ROOT / "docs" / "metrics.md").read_text()
    names: set[str] = set()
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        full = None
        for name in re.findall(r"`([a-zA-Z_:][a-zA-Z0-9_:]*)`", cells[0]):
            if name.startswith(":") and full:        # `:p95_5m` shorthand of the previous name
                names.add(full.rsplit(":", 1)[0] + name)
            else:
                full = name
                names.add(name)
        if len(cells) > 1 and cells[1] == "histogram":
            names |= {f"{full}_bucket", f"{full}_count", f"{full}_sum"}
    return names


def metric_names(expr: str) -> set[str]:
    """Series names in a PromQL expression (label matchers, strings and grouping removed)."""
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    stripped = re.sub(r"\{[^}]*\}", "", stripped)
    stripped = re.sub(r"\[[^\]]*\]", "", stripped)
    stripped = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "",
                      stripped)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", stripped):
        rest = stripped[match.end():].lstrip()
        if rest.startswith("(") or match.group().lower() in PROMQL_WORDS:
            continue
        names.add(match.group())
    return names


def test_metric_names_come_from_the_metric_reference():
    documented = documented_metrics() | EXTERNAL_METRICS
    assert "platform:energy_pool_available:ratio" in documented
    assert "operation:operation_duration_seconds:p99_5m" in documented
    unknown = {}
    for query in panel_queries():
        for name in metric_names(query.expr) - documented:
            unknown.setdefault(name, str(query))
    assert not unknown, f"not in docs/metrics.md: {unknown}"


# ------------------------------------------------------------------ thresholds

def alerting_rules() -> dict[str, list[dict]]:
    """Alerting rules by alert name (a name may have a warning and a critical rule)."""
    rules: dict[str, list[dict]] = {}
    for path in sorted((ROOT / "rules").glob("*.rules.yml")):
        for group in yaml.safe_load(path.read_text()).get("groups", []):
            for rule in group.get("rules", []):
                if "alert" in rule:
                    rules.setdefault(rule["alert"], []).append(rule)
    return rules


COMPARISON_RE = re.compile(r"(<=|>=|<|>)\s*(?:bool\s+)?(-?\d+(?:\.\d+)?(?:e-?\d+)?)(?![\w.])")


def alert_threshold(rule: dict) -> tuple[str, float]:
    """The comparison of an alert expression with its threshold: ``('<', 0.2)``.

    Comparisons with 0 (guards such as ``capacity > 0``) are not thresholds.
    """
    found = [(op, float(num)) for op, num in COMPARISON_RE.findall(rule["expr"])
             if float(num) != 0]
    assert len(found) == 1, f"{rule['alert']}: expected one threshold in {rule['expr']!r}"
    return found[0]


@pytest.fixture(scope="module")
def rules():
    found = alerting_rules()
    assert found, "no alerting rules in rules/*.rules.yml"
    return found


def test_threshold_panels_exist():
    titles = {(d["uid"], p["title"]) for d in DASHBOARD_FILES.values() for p in panels(d)}
    assert set(THRESHOLD_ALERTS) <= titles


@pytest.mark.parametrize(("dash", "panel"), data_panels())
def test_thresholds_equal_the_alert_rules(dash, panel, rules):
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[0]["value"] is None, "the base step"
    values = [s["value"] for s in steps[1:]]
    assert values == sorted(values)
    alert_names = THRESHOLD_ALERTS.get((dash["uid"], panel["title"]))
    if alert_names is None:
        # A panel without an alert behind it must not invent thresholds.
        assert values == [], f"thresholds {values} with no alert rule behind them"
        return
    expected = {}
    for name in alert_names:
        assert name in rules, f"alert {name} is not in rules/"
        for rule in rules[name]:
            op, value = alert_threshold(rule)
            expected[value] = (op, rule["labels"]["severity"])
    assert sorted(values) == sorted(expected), (
        f"panel thresholds {values} != alert thresholds {sorted(expected)}")
    for index, step in enumerate(steps[1:], start=1):
        op, severity = expected[step["value"]]
        # "x > t": values from t up take the alert's colour; "x < t": values below t do.
        coloured = step if op.startswith(">") else steps[index - 1]
        assert coloured["color"] == SEVERITY_COLORS[severity], (
            f"{step['value']} ({severity}) coloured {coloured['color']}")
    if panel["type"] == "timeseries":
        assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] != "off", (
            "thresholds are drawn")


def test_ratio_panels_are_fractions():
    """percentunit means 0..1: a ratio panel must not multiply by 100."""
    for query in panel_queries():
        if "ratio" in query.expr:
            assert "* 100" not in query.expr and "*100" not in query.expr, str(query)

