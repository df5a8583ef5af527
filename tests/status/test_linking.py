"""How a new ticket is matched with open incidents: the signals, the decision, the figures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.harness.app import create_test_app, ticketing_config
from ticketing.status import linking
from ticketing.status.settings import (
    DEFAULT_COMPONENTS,
    LinkingSettings,
    StatusConfigError,
    load_settings,
)

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = {c.id: c for c in DEFAULT_COMPONENTS}
TRANSACTIONS = linking.OpenIncident(
    1, "Transactions stuck in pending", [COMPONENTS["transactions"]]
)
ENERGY = linking.OpenIncident(2, "Energy purchases refused", [COMPONENTS["energy-pool"]])


def match(title: str, description: str, category: str | None = None, alerts=()):
    return linking.best_match(
        linking.Text.of(title, description), title, category, [TRANSACTIONS, ENERGY], alerts
    )


@pytest.mark.parametrize(
    ("title", "description", "incident_id"),
    [
        ("Nothing settles", "Since 09:40 all our transactions stay pending.", 1),
        ("取引が保留のまま", "09:40から送金がすべてpendingのままで、決済が完了しません。", 1),
        ("거래가 대기 중", "09:40부터 모든 거래가 pending 상태로 멈춰 있습니다.", 1),
        ("Energiekauf abgelehnt", "Seit heute früh wird jeder Energie-Kauf abgelehnt.", 2),
    ],
)
def test_a_failure_of_the_part_is_linked_to_its_incident(title, description, incident_id):
    found = match(title, description)
    assert found is not None and found.incident_id == incident_id
    assert linking.decide(found, LinkingSettings()) == "link", found.reason
    assert "reports a failure" in found.reason


@pytest.mark.parametrize(
    ("title", "description"),
    [
        ("How do I list pending transactions?", "Is there an endpoint for it?"),
        ("Invoice for November", "Could you send the November invoice again?"),
        ("Transactions failed last month", "In October 2% failed. Is that normal?"),
        ("Add a colleague", "Please add anna@example.org as an admin."),
    ],
)
def test_questions_and_old_problems_are_not_linked(title, description):
    assert linking.decide(match(title, description), LinkingSettings()) != "link"


def test_no_open_incident_no_match():
    assert linking.best_match(linking.Text.of("x", "y"), "x", None, [], ()) is None
    assert linking.decide(None, LinkingSettings()) == "none"


def test_cjk_runs_stand_apart_from_latin_words():
    text = linking.Text.of("", "送金がすべてpendingのまま")
    assert "pending" in text.tokens and text.has("送金")


def test_thresholds_are_checked_with_their_location():
    with pytest.raises(StatusConfigError) as raised:
        load_settings({"linking": {"link_at": 0.3, "suggest_at": 0.5}})
    assert "status.linking.suggest_at: must be <= status.linking.link_at" in raised.value.problems
    with pytest.raises(StatusConfigError) as raised:
        load_settings({"components": [{"id": "api", "name": "API", "categories": ["nope"]}]})
    assert any(p.startswith("status.components[0].categories[0]") for p in raised.value.problems)


def test_the_figures_in_the_docs_are_what_the_command_prints(tmp_path):
    """docs/status.md quotes evaluate-linking's figures: they must be the command's."""
    app = create_test_app(ticketing_config(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path))
    result = app.test_cli_runner().invoke(args=["incidents", "evaluate-linking"])
    assert result.exit_code == 0, result.output
    printed = re.findall(
        r"precision ([\d.]+)% \((\d+) of (\d+)\), recall ([\d.]+)% \((\d+) of (\d+)\)",
        result.output,
    )
    assert len(printed) == 2  # the shipped weights, then held out
    docs = (ROOT / "docs" / "status.md").read_text()
    rows = re.findall(
        r"\| (?:shipped weights, whole set|held out \(5 folds\)) \| ([\d.]+) % \((\d+) of (\d+)\) "
        r"\| ([\d.]+) % \((\d+) of (\d+)\) \|",
        docs,
    )
    assert rows == printed
    shipped_precision, held_out_precision = (float(p[0]) for p in printed)
    assert shipped_precision >= 90 and held_out_precision >= 85
