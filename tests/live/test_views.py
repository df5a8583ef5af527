"""What staff and partners see of one snapshot (no services needed: a snapshot is data)."""

from __future__ import annotations

import json

from ticketing.live.snapshot import Snapshot, partner_view, staff_view


def _vector(label: str | None, **values: float | str) -> list[dict]:
    return [
        {"metric": {label: key} if label else {}, "value": [0, str(value)]}
        for key, value in values.items()
    ]


def _alert(name, severity, team, starts_at="2024-01-01T00:00:00Z", **labels):
    return {
        "name": name,
        "severity": severity,
        "team": team,
        "summary": f"{name} summary",
        "description": f"{name} internal description",
        "runbook_url": "https://rb",
        "starts_at": starts_at,
        "fingerprint": name,
        "labels": {"alertname": name, "severity": severity, "team": team, **labels},
    }


def _snapshot(**overrides) -> Snapshot:
    metrics = {
        "api_up": _vector("target", platform=1, sandbox=0),
        "api_latency": _vector("target", platform=0.2, sandbox=0),
        "api_latency_p95": _vector("target", platform=0.4),
        "service_error_ratio": _vector(None, x="NaN"),  # no requests: 0/0
        "energy_pool_available_ratio": _vector("pool", main=0.5),
        "transaction_rate": _vector("status", completed=10.0, failed=1.0),
        "transaction_failure_ratio": _vector(None, x=1 / 11),
        "partners_active": _vector(None, x=4),
        "open_tickets": _vector("priority", high=3, low=1),
    }
    alerts = [
        _alert("EnergyPoolLow", "warning", "oncall", "2024-01-01T00:05:00Z"),
        _alert("PlatformApiDown", "critical", "oncall", target="sandbox"),
        _alert("PlatformApiSlow", "warning", "oncall", partner="7"),
        _alert("PlatformApiSlow", "warning", "oncall", partner_id="8"),
        _alert("SecurityBruteForce", "warning", "security"),
        _alert("EnergyPoolLow", "warning", "support"),  # allow-listed name, internal team
        _alert("Watchdog", "info", "oncall"),
    ]
    fields = dict(
        seq=1,
        taken_at=1_700_000_000.5,
        metrics=metrics,
        alerts=alerts,
        tickets_by_partner={7: {"low": 0, "medium": 2, "high": 0, "critical": 1}},
        sources={
            "prometheus": {"ok": True, "evaluated_at": 1_699_999_999.5},
            "alertmanager": {"ok": True},
            "database": {"ok": True},
        },
    )
    fields.update(overrides)
    return Snapshot(**fields)


PUBLIC = frozenset({"EnergyPoolLow", "PlatformApiDown", "PlatformApiSlow"})


def test_staff_see_all_numbers_and_all_alerts_but_the_hidden_ones():
    view = staff_view(_snapshot(), max_alerts=50, hidden_alerts=frozenset({"Watchdog"}))
    assert view["api"] == {
        "up": False,
        "targets": {
            "platform": {"up": True, "latency_seconds": 0.2, "latency_p95_seconds": 0.4},
            "sandbox": {"up": False, "latency_seconds": 0.0, "latency_p95_seconds": None},
        },
    }
    assert view["service"] == {"error_ratio": None}  # NaN is not JSON: unknown
    assert view["energy_pools"] == {"main": {"available_ratio": 0.5}}
    assert view["transactions"] == {
        "rate_per_second": {"completed": 10.0, "failed": 1.0},
        "failure_ratio": 1 / 11,
    }
    assert view["partners"] == {"active": 4}
    assert view["tickets"] == {
        "scope": "all",
        "open_by_priority": {"low": 1, "medium": 0, "high": 3, "critical": 0},
    }
    names = [a["name"] for a in view["alerts"]["items"]]
    assert names[0] == "PlatformApiDown"  # critical first, then by start
    assert "Watchdog" not in names and len(names) == 6
    assert view["alerts"]["by_severity"] == {"critical": 1, "warning": 5}
    json.dumps(view, allow_nan=False)


def test_a_partner_sees_only_public_alerts_about_the_platform_or_itself():
    view = partner_view(_snapshot(), 7, max_alerts=50, partner_alerts=PUBLIC)
    items = view["alerts"]["items"]
    assert [(a["name"], a["severity"]) for a in items] == [
        ("PlatformApiDown", "critical"),
        ("PlatformApiSlow", "warning"),
        ("EnergyPoolLow", "warning"),
    ]
    assert all(set(a) == {"name", "severity", "summary", "starts_at"} for a in items)
    assert view["tickets"] == {
        "scope": "own",
        "open_by_priority": {"low": 0, "medium": 2, "high": 0, "critical": 1},
    }
    assert "partners" not in view
    assert "internal" not in json.dumps(view)


def test_a_partner_without_open_tickets_sees_zeros():
    view = partner_view(_snapshot(), 9, max_alerts=50, partner_alerts=PUBLIC)
    assert view["tickets"]["open_by_priority"] == {"low": 0, "medium": 0, "high": 0, "critical": 0}


def test_alerts_are_capped_but_counted():
    view = staff_view(_snapshot(), max_alerts=2, hidden_alerts=frozenset())
    assert len(view["alerts"]["items"]) == 2
    assert view["alerts"]["firing"] == 7 and view["alerts"]["truncated"] is True


def test_unreachable_sources_leave_their_parts_unknown():
    snap = _snapshot(
        metrics=dict.fromkeys(_snapshot().metrics),
        alerts=None,
        tickets_by_partner=None,
        sources={
            "prometheus": {"ok": False, "error": "ConnectionError: prometheus:9090"},
            "alertmanager": {"ok": False, "error": "ReadTimeout: am:9093"},
            "database": {"ok": False, "error": "OperationalError: db"},
        },
    )
    staff = staff_view(snap, max_alerts=50, hidden_alerts=frozenset())
    assert staff["api"] == {"up": None, "targets": None}
    assert staff["energy_pools"] is None and staff["alerts"] is None
    assert staff["partners"] == {"active": None}
    assert staff["tickets"]["open_by_priority"] is None
    assert staff["sources"]["prometheus"]["error"] == "ConnectionError: prometheus:9090"
    partner = partner_view(snap, 7, max_alerts=50, partner_alerts=PUBLIC)
    assert partner["tickets"]["open_by_priority"] is None and partner["alerts"] is None
    assert partner["sources"] == {
        name: {"ok": False, "error": "unavailable"}
        for name in ("prometheus", "alertmanager", "database")
    }
