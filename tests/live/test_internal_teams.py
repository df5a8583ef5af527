"""Alerts of the security and support teams never reach partners, however the
``team`` label is written (security review, finding 6)."""

from __future__ import annotations

import pytest

from ticketing.live.snapshot import QUERIES, Snapshot, _alert, partner_view, staff_view

PUBLIC = frozenset({"EnergyPoolLow"})


def _snapshot(team: str | None) -> Snapshot:
    labels = {"alertname": "EnergyPoolLow", "severity": "warning"}
    if team is not None:
        labels["team"] = team
    raw = {
        "labels": labels,
        "annotations": {"summary": "pool low", "description": "internal"},
        "startsAt": "2024-01-01T00:00:00Z",
        "fingerprint": "f",
    }
    return Snapshot(
        seq=1,
        taken_at=1_700_000_000.0,
        metrics=dict.fromkeys(QUERIES),
        alerts=[_alert(raw)],  # what the snapshot makes of Alertmanager's alert
        tickets_by_partner={},
        sources={"prometheus": {"ok": True}, "alertmanager": {"ok": True}},
    )


@pytest.mark.parametrize(
    ("team", "shown"),
    [
        ("security", False),
        ("Security", False),
        ("SECURITY", False),
        (" security", False),
        ("security ", False),
        ("\tSecurity\n", False),
        ("sEcUrItY", False),
        ("support", False),
        ("Support", False),
        (" SUPPORT ", False),
        ("oncall", True),
        ("Oncall", True),
        ("security-ops", True),  # another team (not listed as internal)
        ("", True),
        (None, True),
    ],
)
def test_internal_team_alerts_are_hidden_from_partners(team, shown):
    snap = _snapshot(team)
    alerts = partner_view(snap, 7, max_alerts=50, partner_alerts=PUBLIC)["alerts"]
    assert (alerts["firing"] == 1) is shown
    assert [a["name"] for a in alerts["items"]] == (["EnergyPoolLow"] if shown else [])
    # Staff see every alert whatever its team.
    assert staff_view(snap, max_alerts=50, hidden_alerts=frozenset())["alerts"]["firing"] == 1
