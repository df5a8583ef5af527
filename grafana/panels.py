"""The panel shapes the partnerwatch dashboards repeat, on grafana-foundation-sdk builders.

Each helper returns an SDK panel builder already set up the partnerwatch way
(the ``${datasource}`` variable, a unit, a description, thresholds from the
alert rules when given); a board places it with :meth:`grafana.board.Board.add`:

    board.add(timeseries("Calls by operation", "Profiled calls per second.", "ops",
                         [query('sum by (operation) (rate(operation_duration_seconds_count'
                                '[$__rate_interval]))', "{{operation}}")]), w=12, h=8)

``thresholds`` take the steps of :meth:`grafana.board.Board.alerts`, which reads
them from the alert rules; a panel without an alert behind it has none.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import (
    bargauge as bargauge_builder,
)
from grafana_foundation_sdk.builders import (
    common as common_builder,
)
from grafana_foundation_sdk.builders import (
    dashboard as dashboard_builder,
)
from grafana_foundation_sdk.builders import (
    gauge as gauge_builder,
)
from grafana_foundation_sdk.builders import (
    prometheus,
)
from grafana_foundation_sdk.builders import (
    stat as stat_builder,
)
from grafana_foundation_sdk.builders import (
    table as table_builder,
)
from grafana_foundation_sdk.builders import (
    timeseries as timeseries_builder,
)
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import prometheus as prometheus_model

# Every panel and query names the dashboard's datasource variable (see grafana/board.py).
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")

Steps = list[tuple[str, float | None]]
NO_THRESHOLDS: Steps = [("green", None)]

# Value mappings of panels that show 1 / 0 health series.
UP_DOWN = {0: ("DOWN", "red"), 1: ("UP", "green")}
OK_FAILING = {0: ("FAILING", "red"), 1: ("OK", "green")}


def query(expr: str, legend: str = "", instant: bool = False) -> prometheus.Dataquery:
    """A PromQL target; a panel helper gives it its refId (A, B, ...)."""
    target = (
        prometheus.Dataquery()
        .datasource(DATASOURCE)
        .expr(expr)
        .legend_format(legend)
        .editor_mode(prometheus_model.QueryEditorMode.CODE)
    )
    if instant:
        return target.instant().format(prometheus_model.PromQueryFormat.TABLE)
    return target.range()


def _common(panel, title: str, description: str, unit: str, targets: list, thresholds: Steps):
    panel.title(title).description(description).datasource(DATASOURCE).unit(unit)
    for index, target in enumerate(targets):
        panel.with_target(target.ref_id(chr(ord("A") + index)))
    steps = [model.Threshold(color=color, value=value) for color, value in thresholds]
    return panel.thresholds(
        dashboard_builder.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(steps)
    )


def _last_value() -> common_builder.ReduceDataOptions:
    return common_builder.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False)


def _color(mode: model.FieldColorModeId) -> dashboard_builder.FieldColor:
    return dashboard_builder.FieldColor().mode(mode)


def _mappings(states: dict[int, tuple[str, str]]) -> list[model.ValueMap]:
    return [
        model.ValueMap(
            options={
                str(value): model.ValueMappingResult(text=text, color=color, index=index)
                for index, (value, (text, color)) in enumerate(sorted(states.items()))
            }
        )
    ]


def timeseries(
    title: str,
    description: str,
    unit: str,
    targets: list,
    *,
    thresholds: Steps = NO_THRESHOLDS,
    stacked: bool = False,
    bars: bool = False,
    max_value: float | None = None,
) -> timeseries_builder.Panel:
    """Lines (or stacked bars) per series; alert thresholds are drawn as lines."""
    panel = _common(timeseries_builder.Panel(), title, description, unit, targets, thresholds)
    drawn = (
        common.GraphThresholdsStyleMode.LINE
        if len(thresholds) > 1
        else (common.GraphThresholdsStyleMode.OFF)
    )
    panel = (
        panel.color_scheme(_color(model.FieldColorModeId.PALETTE_CLASSIC))
        .draw_style(common.GraphDrawStyle.BARS if bars else common.GraphDrawStyle.LINE)
        .line_width(1)
        .fill_opacity(80 if bars else 10)
        .gradient_mode(common.GraphGradientMode.NONE)
        .show_points(common.VisibilityMode.NEVER)
        .span_nulls(False)
        .axis_placement(common.AxisPlacement.AUTO)
        .axis_soft_min(0)
        .stacking(
            common_builder.StackingConfig()
            .group("A")
            .mode(common.StackingMode.NORMAL if stacked or bars else common.StackingMode.NONE)
        )
        .thresholds_style(common_builder.GraphThresholdsStyleConfig().mode(drawn))
        .legend(
            common_builder.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs([])
        )
        .tooltip(
            common_builder.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    return panel if max_value is None else panel.max(max_value)


def stat(
    title: str,
    description: str,
    unit: str,
    targets: list,
    *,
    thresholds: Steps = NO_THRESHOLDS,
    states: dict | None = None,
    decimals: int | None = None,
    sparkline: bool = False,
) -> stat_builder.Panel:
    """One big number per series: the last value, coloured by thresholds or ``states``.

    A panel with alert thresholds or states colours its background, so a
    problem shows from across the room; the others colour the number.
    """
    panel = (
        _common(stat_builder.Panel(), title, description, unit, targets, thresholds)
        .color_scheme(_color(model.FieldColorModeId.THRESHOLDS))
        .mappings(_mappings(states) if states else [])
        .reduce_options(_last_value())
        .color_mode(
            common.BigValueColorMode.BACKGROUND
            if states or len(thresholds) > 1
            else common.BigValueColorMode.VALUE
        )
        .graph_mode(common.BigValueGraphMode.AREA if sparkline else common.BigValueGraphMode.NONE)
        .justify_mode(common.BigValueJustifyMode.AUTO)
        .orientation(common.VizOrientation.AUTO)
        .text_mode(common.BigValueTextMode.AUTO)
        .wide_layout(True)
        .show_percent_change(False)
    )
    return panel if decimals is None else panel.decimals(decimals)


def gauge(
    title: str,
    description: str,
    unit: str,
    targets: list,
    *,
    thresholds: Steps = NO_THRESHOLDS,
    max_value: float = 1,
) -> gauge_builder.Panel:
    """A dial per series from 0 to ``max_value`` with the threshold markers."""
    return (
        _common(gauge_builder.Panel(), title, description, unit, targets, thresholds)
        .min(0)
        .max(max_value)
        .color_scheme(_color(model.FieldColorModeId.THRESHOLDS))
        .mappings([])
        .reduce_options(_last_value())
        .show_threshold_labels(False)
        .show_threshold_markers(True)
        .orientation(common.VizOrientation.AUTO)
        .sizing(common.BarGaugeSizing.AUTO)
        .min_viz_height(75)
        .min_viz_width(75)
    )


def bargauge(
    title: str, description: str, unit: str, targets: list, *, thresholds: Steps = NO_THRESHOLDS
) -> bargauge_builder.Panel:
    """Horizontal bars, one per series: palette colours, or threshold colours when given."""
    color = (
        model.FieldColorModeId.THRESHOLDS
        if len(thresholds) > 1
        else model.FieldColorModeId.PALETTE_CLASSIC
    )
    return (
        _common(bargauge_builder.Panel(), title, description, unit, targets, thresholds)
        .min(0)
        .color_scheme(_color(color))
        .mappings([])
        .reduce_options(_last_value())
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .orientation(common.VizOrientation.HORIZONTAL)
        .show_unfilled(True)
        .value_mode(common.BarGaugeValueMode.COLOR)
        .name_placement(common.BarGaugeNamePlacement.AUTO)
        .sizing(common.BarGaugeSizing.AUTO)
        .min_viz_height(16)
        .min_viz_width(8)
        .max_viz_height(300)
    )


def table(
    title: str,
    description: str,
    unit: str,
    key: str,
    columns: dict[str, str],
    *,
    column_units: dict[str, str] | None = None,
    sort_by: str | None = None,
    hidden: tuple[str, ...] = ("Time", "__name__", "instance", "job"),
) -> table_builder.Panel:
    """One row per ``key`` label value, one column per instant query.

    ``columns`` maps a column name to its PromQL, in order; ``column_units``
    gives columns another unit than the panel's (counts show without decimals).
    """
    targets = [query(expr, instant=True) for expr in columns.values()]
    panel = (
        _common(table_builder.Panel(), title, description, unit, targets, NO_THRESHOLDS)
        .color_scheme(_color(model.FieldColorModeId.THRESHOLDS))
        .mappings([])
        .align(common.FieldTextAlignment.AUTO)
        .cell_options(common.TableAutoCellOptions())
        .show_header(True)
        .cell_height(common.TableCellHeight.SM)
        .footer(common_builder.TableFooterOptions().show(False).reducer(["sum"]))
    )
    for name, column_unit in (column_units or {}).items():
        panel.override_by_name(
            name,
            [
                model.DynamicConfigValue(id_val="unit", value=column_unit),
                model.DynamicConfigValue(id_val="decimals", value=0),
            ],
        )
    if sort_by:
        panel.sort_by([common_builder.TableSortByFieldState().display_name(sort_by).desc(True)])
    values = [f"Value #{chr(ord('A') + index)}" for index in range(len(columns))]
    return panel.with_transformation(
        model.DataTransformerConfig(id_val="merge", options={})
    ).with_transformation(
        model.DataTransformerConfig(
            id_val="organize",
            options={
                "excludeByName": {name: True for name in hidden},
                "indexByName": {key: 0, **{v: i + 1 for i, v in enumerate(values)}},
                "renameByName": dict(zip(values, columns, strict=True)),
            },
        )
    )
