"""The committed dashboards are the generator's output, with thresholds from the rules.

grafana/dashboards.py writes grafana/dashboards/*.json from grafana/boards/
and the alert rules. These tests run it (its functions, and the command
itself) on the real rule files and on altered copies in a temporary folder:
a changed alert threshold moves the panel's threshold with it and makes the
committed JSON out of date, and a rule whose expression no longer has the
``<expression> <op> <number>`` shape stops the generator instead of drawing a
wrong line. docs/dashboards.md's "Panel by panel" section is written by the
same run (grafana/docs.py) and kept in sync the same way.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grafana.dashboards import page_text, render, stale
from grafana.docs import BEGIN, END, PAGE, panel_section, update_page
from grafana.thresholds import RuleShapeError, alerting_rules
from tests.harness.dashboards import DASHBOARDS, ROOT, dashboards, panels, threshold_mismatch


def rules_copy(tmp_path: Path, file: str, old: str, new: str) -> Path:
    """A copy of rules/ with ``old`` replaced by ``new`` (once) in ``file``."""
    copy = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", copy)
    text = (copy / file).read_text()
    assert text.count(old) == 1, f"{old!r} is not once in rules/{file}"
    (copy / file).write_text(text.replace(old, new))
    return copy


def panel(rendered: dict[str, str], file: str, title: str) -> dict:
    [found] = [p for p in panels(json.loads(rendered[file])) if p["title"] == title]
    return found


def steps(panel: dict) -> list[tuple[str, float | None]]:
    found = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    return [(step["color"], step["value"]) for step in found]


def test_committed_dashboards_are_the_generator_output():
    assert stale(DASHBOARDS, render()) == [], (
        "grafana/dashboards/ is out of date: run `python -m grafana.dashboards`"
    )


def test_generator_check_command(tmp_path):
    """``--check`` names an edited file and fails; a plain run rewrites it."""
    output = tmp_path / "dashboards"
    shutil.copytree(DASHBOARDS, output)
    docs = tmp_path / "dashboards.md"
    shutil.copy(PAGE, docs)
    edited = output / "support.json"
    edited.write_text(edited.read_text().replace('"Open tickets"', '"Open tickets (edited)"'))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "grafana.dashboards",
                "--output",
                str(output),
                "--docs",
                str(docs),
                *args,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    checked = run("--check")
    assert checked.returncode == 1
    assert "support.json: out of date" in checked.stderr
    assert "platform-overview.json" not in checked.stderr
    written = run()
    assert written.returncode == 0, written.stderr
    assert written.stdout.strip() == f"wrote {edited}"
    assert run("--check").returncode == 0
    assert edited.read_text() == (DASHBOARDS / "support.json").read_text()

    # The docs page's generated section is checked and rewritten the same way; the
    # hand-written rest of the page is left alone.
    docs.write_text(docs.read_text().replace("| Open tickets |", "| Open tickets (edited) |"))
    checked = run("--check")
    assert checked.returncode == 1
    assert checked.stderr.strip() == f"{docs}: out of date; run python -m grafana.dashboards"
    assert run().stdout.strip() == f"wrote {docs}"
    assert docs.read_text() == PAGE.read_text()


def test_docs_page_describes_every_panel_as_generated():
    """docs/dashboards.md lists each dashboard's panels, as the generator writes them."""
    rendered = render()
    assert PAGE.read_text() == page_text(PAGE, rendered), (
        "docs/dashboards.md's panel-by-panel section is out of date: run ./dev dashboards"
    )
    text = PAGE.read_text()
    section = text[text.index(BEGIN) : text.index(END)]
    for name, body in rendered.items():
        dashboard = json.loads(body)
        assert f"`grafana/dashboards/{name}`, uid `{dashboard['uid']}`" in section
        for found in panels(dashboard):
            assert f"| {found['title']} |" in section, found["title"]
            for target in found.get("targets", []):
                expr = " ".join(target["expr"].split()).replace("|", "\\|")
                assert expr in section, expr
    # Units and thresholds in words, as the panels show them.
    assert (
        "| Energy pool available | gauge |" in section
        and "| percent | red below 20 %, orange from 20 %, green from 30 % |" in section
    )
    assert "| seconds | orange from 1 s |" in section
    # Only the section is generated: the hand-written page around it stays.
    assert text.index("## Changing a dashboard") < text.index(BEGIN)


def test_a_changed_rule_threshold_changes_the_docs_page(tmp_path):
    rendered = render(rules_copy(tmp_path, "energy.rules.yml", "ratio < 0.20", "ratio < 0.15"))
    section = panel_section(rendered)
    assert "red below 15 %, orange from 15 %, green from 30 %" in section
    assert page_text(PAGE, rendered) != PAGE.read_text()
    # Replacing the section twice gives the same page; a page without one gets it appended.
    once = update_page(PAGE.read_text(), section)
    assert update_page(once, section) == once
    assert update_page("# Dashboards\n", section) == "# Dashboards\n\n" + section


@pytest.mark.parametrize(
    ("file", "old", "new", "dashboard", "title", "expected"),
    [
        (
            "energy.rules.yml",
            "ratio < 0.20",
            "ratio < 0.15",
            "platform-overview.json",
            "Energy pool available",
            [("red", None), ("orange", 0.15), ("green", 0.3)],
        ),
        (
            "transactions.rules.yml",
            "ratio_rate5m > 0.20",
            "ratio_rate5m > 0.25",
            "platform-overview.json",
            "Transaction failure ratio",
            [("green", None), ("orange", 0.05), ("red", 0.25)],
        ),
        (
            "security.rules.yml",
            "[5m])) > 100",
            "[5m])) > 250",
            "security.json",
            "Rate-limit rejections in 5 m by action",
            [("green", None), ("orange", 250)],
        ),
    ],
)
def test_a_changed_rule_threshold_moves_the_panel(
    tmp_path, file, old, new, dashboard, title, expected
):
    rules_dir = rules_copy(tmp_path, file, old, new)
    rendered = render(rules_dir)
    assert steps(panel(rendered, dashboard, title)) == expected
    # The committed dashboards now disagree with the rules: both checks say so.
    assert dashboard in stale(DASHBOARDS, rendered)
    [committed] = [
        d for d in dashboards().values() if d["uid"] == json.loads(rendered[dashboard])["uid"]
    ]
    [old_panel] = [p for p in panels(committed) if p["title"] == title]
    mismatch = threshold_mismatch(committed, old_panel, alerting_rules(rules_dir))
    assert mismatch and "!= alert thresholds" in mismatch


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        # Another shape of expression: the constant is no longer the last comparison.
        (
            "energy.rules.yml",
            "expr: platform:energy_pool_available:ratio < 0.20",
            "expr: platform:energy_pool_available:ratio < 0.20 and on() vector(1)",
            "energy.rules.yml: alert EnergyPoolCritical: expected '<expression> <op> <number>'",
        ),
        # A second comparison (a guard) in front of the threshold.
        (
            "platform-api.rules.yml",
            "expr: platform_api_probe_duration_seconds > 1",
            "expr: platform_api_probe_duration_seconds > 0"
            " and platform_api_probe_duration_seconds > 1",
            "platform-api.rules.yml: alert PlatformApiSlow: expected",
        ),
        # An alert a panel draws is gone (renamed).
        (
            "security.rules.yml",
            "alert: RateLimitStorm",
            "alert: RateLimitFlood",
            "alert RateLimitStorm is not in the rule files",
        ),
        # A severity without a panel colour.
        (
            "ticketing.rules.yml",
            "expr: ticketing:http_5xx:ratio_rate5m > 0.05\n"
            "        for: 5m\n        labels:\n          severity: warning",
            "expr: ticketing:http_5xx:ratio_rate5m > 0.05\n"
            "        for: 5m\n        labels:\n          severity: info",
            "alert TicketingHighErrorRate: severity 'info' has no panel colour",
        ),
    ],
)
def test_a_rule_of_another_shape_stops_the_generator(tmp_path, file, old, new, message):
    with pytest.raises(RuleShapeError) as raised:
        render(rules_copy(tmp_path, file, old, new))
    assert message in str(raised.value)
