"""A partnerwatch dashboard: the settings every one shares, around the SDK's builder.

    board = Board("partnerwatch-operations", "Operations", "Profiled operations ...",
                  tags=["profiler"], rules=rules)
    board.variable("operation", "Operation", "operation_duration_seconds_count")
    board.add(timeseries(...), w=12, h=8)       # placed left to right, row by row
    board.alerts("EnergyPoolLow", "EnergyPoolCritical")   # threshold steps from rules/
    board.to_json()                              # what grafana/dashboards/<name>.json holds

Every board is read-only (provisioned from the repository), refreshes every 10 s,
shows UTC, links to the other partnerwatch dashboards, and has a ``datasource``
variable listing the Prometheus-compatible datasources, set by default to the
provisioned default one (uid ``prometheus``); every panel and query uses it.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from grafana_foundation_sdk.builders import dashboard as builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from grafana.panels import DATASOURCE, Steps
from grafana.thresholds import threshold_steps

DATASOURCES = Path(__file__).resolve().parent / "provisioning" / "datasources"

# Grafana 10.4 (docker-compose.yml) writes schema 39.
SCHEMA_VERSION = 39
PANEL_GRID_WIDTH = 24


def default_datasource(directory: Path = DATASOURCES) -> dict:
    """The provisioned datasource marked ``isDefault`` (the one the dashboards open with)."""
    found = [
        source
        for path in sorted(directory.glob("*.yml"))
        for source in yaml.safe_load(path.read_text()).get("datasources", [])
        if source.get("isDefault")
    ]
    if len(found) != 1:
        raise ValueError(f"expected one default datasource in {directory}, found {len(found)}")
    return found[0]


def datasource_variable(default: dict) -> builder.DatasourceVariable:
    return (
        builder.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(model.VariableOption(selected=True, text=default["name"], value=default["uid"]))
        .hide(model.VariableHide.DONT_HIDE)
        .regex("")
        .multi(False)
        .include_all(False)
    )


class Board:
    def __init__(
        self,
        uid: str,
        title: str,
        description: str,
        *,
        tags: list[str],
        rules: dict[str, list[dict]],
    ):
        self.rules = rules
        self._next_id = 1
        self._row_width = 0
        self._builder = (
            builder.Dashboard(f"partnerwatch / {title}")
            .uid(uid)
            .description(description)
            .tags(["partnerwatch", *tags])
            .readonly()
            .timezone("utc")
            .week_start("")
            .tooltip(model.DashboardCursorSync.CROSSHAIR)
            .fiscal_year_start_month(0)
            .time("now-1h", "now")
            .refresh("10s")
            .version(1)
            .timepicker(builder.TimePicker().refresh_intervals(["5s", "10s", "30s", "1m", "5m"]))
            .annotation(
                builder.AnnotationQuery()
                .name("Annotations & Alerts")
                .built_in(1)
                .datasource(model.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
                .enable(True)
                .hide(True)
                .icon_color("rgba(0, 211, 255, 1)")
                .type("dashboard")
            )
            .link(
                builder.DashboardLink("partnerwatch")
                .type(model.DashboardLinkType.DASHBOARDS)
                .tags(["partnerwatch"])
                .as_dropdown(True)
                .icon("external link")
                .tooltip("")
                .url("")
                .include_vars(False)
                .keep_time(True)
                .target_blank(False)
            )
            .with_variable(datasource_variable(default_datasource()))
        )

    def variable(self, name: str, label: str, metric: str, label_name: str | None = None) -> None:
        """A multi-value variable over a label's values, "All" being the regex ``.*``."""
        # The form Grafana's Prometheus variable editor saves (qryType 1: a classic query).
        query = {
            "qryType": 1,
            "query": f"label_values({metric}, {label_name or name})",
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
        }
        self._builder.with_variable(
            builder.QueryVariable(name)
            .label(label)
            .datasource(DATASOURCE)
            .query(query)
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC)
            .include_all(True)
            .multi(True)
            .all_value(".*")
            .regex("")
            .options([])
            .hide(model.VariableHide.DONT_HIDE)
            .current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
        )

    def alerts(self, *names: str) -> Steps:
        """Threshold steps of the alerts ``names``, read from the rule files."""
        return threshold_steps(list(names), self.rules)

    def add(self, panel, *, w: int, h: int) -> None:
        """Place ``panel`` right of the previous one; a row must fill the grid's 24 columns."""
        if self._row_width + w > PANEL_GRID_WIDTH:
            raise ValueError(f"row overflows the grid: {self._row_width} + {w} > 24")
        self._row_width = (self._row_width + w) % PANEL_GRID_WIDTH
        self._builder.with_panel(panel.id(self._next_id).span(w).height(h))
        self._next_id += 1

    def to_json(self) -> dict:
        if self._row_width:
            raise ValueError(f"the last row is {self._row_width} columns wide, not 24")
        dashboard = self._builder.build()
        dashboard.schema_version = SCHEMA_VERSION
        data = json.loads(json.dumps(dashboard, cls=JSONEncoder))
        data["id"] = None  # a provisioned dashboard has no database id; the SDK omits it
        return data
