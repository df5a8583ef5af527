"""The labelled set ticket-to-incident linking is measured on (ticketing/status/linking_set.yml).

Checks its format and that it stays the set it says it is: enough cases, a
balance of related and unrelated tickets, tickets not in English, several
tickets per incident.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from ticketing.config import check_config, load_sections
from ticketing.desk.choices import CATEGORIES

ROOT = Path(__file__).resolve().parents[2]
SET_FILE = ROOT / "ticketing" / "status" / "linking_set.yml"

# The partner alerts and the component each speaks for.
PARTNER_ALERTS = {
    "PartnerTransactionFailureRatioHigh": "transactions",
    "PartnerTransactionsStalled": "transactions",
    "PartnerEnergyDrawHigh": "energy-pool",
    "PartnerWebhookDeliveryFailing": "support",
    "PartnerWebhookQueueBehind": "support",
}


@pytest.fixture(scope="module")
def cases() -> list[dict]:
    loaded = yaml.safe_load(SET_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, list)
    return loaded


@pytest.fixture(scope="module")
def components() -> set[str]:
    status = check_config(load_sections(), environ={})["status"]
    return {c.id for c in status.components}


def _ticket_text(case: dict) -> str:
    return case["ticket"]["title"] + " " + case["ticket"]["description"]


def test_every_case_has_the_format(cases, components):
    assert components == {"api", "transactions", "energy-pool", "support"}
    for case in cases:
        where = case.get("id", case)
        assert set(case) == {"id", "incident", "ticket", "partner_alerts", "related"}, where
        assert isinstance(case["id"], str) and case["id"], where
        prefix, _, number = case["id"].rpartition("-")
        assert prefix and number.isdigit(), where

        incident = case["incident"]
        assert set(incident) == {"title", "components"}, where
        assert isinstance(incident["title"], str) and incident["title"].strip(), where
        assert isinstance(incident["components"], list) and incident["components"], where
        assert set(incident["components"]) <= components, where
        assert len(set(incident["components"])) == len(incident["components"]), where

        ticket = case["ticket"]
        assert set(ticket) == {"title", "description", "category"}, where
        assert isinstance(ticket["title"], str) and ticket["title"].strip(), where
        assert isinstance(ticket["description"], str) and ticket["description"].strip(), where
        assert ticket["category"] is None or ticket["category"] in CATEGORIES, where

        assert isinstance(case["partner_alerts"], list), where
        assert set(case["partner_alerts"]) <= set(PARTNER_ALERTS), where
        assert len(set(case["partner_alerts"])) == len(case["partner_alerts"]), where
        assert isinstance(case["related"], bool), where


def test_ids_are_unique(cases):
    repeated = [i for i, n in Counter(c["id"] for c in cases).items() if n > 1]
    assert repeated == []


def test_no_two_tickets_alike(cases):
    titles = Counter(c["ticket"]["title"].casefold() for c in cases)
    descriptions = Counter(c["ticket"]["description"].casefold() for c in cases)
    assert [t for t, n in titles.items() if n > 1] == []
    assert [d for d, n in descriptions.items() if n > 1] == []


def test_the_alert_names_are_the_shipped_rules():
    rules = yaml.safe_load((ROOT / "rules" / "partners.rules.yml").read_text(encoding="utf-8"))
    shipped = {r["alert"] for group in rules["groups"] for r in group["rules"] if "alert" in r}
    assert set(PARTNER_ALERTS) <= shipped


def test_size_and_balance(cases):
    assert len(cases) >= 240
    related = sum(c["related"] for c in cases)
    assert 0.45 <= related / len(cases) <= 0.65


def test_tickets_not_in_english(cases):
    non_ascii = [c for c in cases if any(ord(ch) > 127 for ch in _ticket_text(c))]
    assert len(non_ascii) >= 0.15 * len(cases)
    # Both labels among them: a scorer must not link (or skip) a ticket for its language.
    assert {c["related"] for c in non_ascii} == {True, False}


def test_every_incident_has_several_tickets_and_one_set_of_components(cases):
    by_title: dict[str, list[dict]] = {}
    for case in cases:
        by_title.setdefault(case["incident"]["title"], []).append(case)
    assert len(by_title) >= 20
    for title, its_cases in by_title.items():
        assert len(its_cases) >= 3, title
        assert len({tuple(c["incident"]["components"]) for c in its_cases}) == 1, title
    covered = {
        comp
        for title_cases in by_title.values()
        for comp in title_cases[0]["incident"]["components"]
    }
    assert covered == {"api", "transactions", "energy-pool", "support"}
    assert any(len(cs[0]["incident"]["components"]) > 1 for cs in by_title.values())


def test_the_hard_cases_are_there(cases):
    """Neither the alert nor the partner's category alone decides the label."""
    alert_on_incident = [
        c
        for c in cases
        if any(PARTNER_ALERTS[a] in c["incident"]["components"] for a in c["partner_alerts"])
    ]
    assert {c["related"] for c in alert_on_incident} == {True, False}
    assert any(c["related"] and not c["partner_alerts"] for c in cases)
    assert any(c["related"] and c["ticket"]["category"] is not None for c in cases)
    assert any(not c["related"] and c["ticket"]["category"] is not None for c in cases)
    assert sum(c["ticket"]["category"] is None for c in cases) > len(cases) / 2
