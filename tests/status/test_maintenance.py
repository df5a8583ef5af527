"""Scheduled maintenance: shown ahead, silenced in a real Alertmanager, told to partners."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import requests

from tests.harness.console import signed_in
from tests.harness.outbox import deliver
from tests.harness.seed import Party, partners
from tests.harness.webhooks import deliver_until, register
from ticketing.db import db
from ticketing.status.models import Maintenance, StatusAudit

AM_CONFIG = {
    "route": {"receiver": "null", "group_wait": "1h"},
    "receivers": [{"name": "null"}],
}


def _alert(alertname: str, component: str) -> dict:
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": alertname, "component": component, "severity": "warning"},
        "annotations": {"summary": alertname},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(hours=1)).isoformat(),
    }


def _silenced_by(am, alertname: str) -> list[str]:
    [alert] = am.alerts(alertname=alertname)
    return alert["status"]["silencedBy"]


def _wait(condition, timeout: float = 15):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_window_silences_its_component_and_not_another(make_app, alertmanager_factory, http_sink):
    am = alertmanager_factory(AM_CONFIG)
    app = make_app(alertmanager_url=am.url)
    keys = partners(app)
    register(app, keys.a, http_sink.url + "/a")
    am.post_alerts([_alert("EnergyPoolLow", "energy-pool"), _alert("PlatformApiSlow", "api")])
    client = app.test_client()
    token = signed_in(client, Party("staff", keys.staff_id, keys.staff))
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    fmt = "%Y-%m-%dT%H:%M"
    # Ahead: shown on the page and in the JSON, nothing silenced yet at its start.
    later = client.post(
        "/console/maintenance",
        data={
            "csrf_token": token,
            "title": "Pool rebalancing",
            "components": ["energy-pool"],
            "starts_at": (now + timedelta(days=1)).strftime(fmt),
            "ends_at": (now + timedelta(days=1, hours=2)).strftime(fmt),
            "body": "Purchases may be slow.",
        },
    )
    assert later.status_code == 303
    upcoming = client.get("/api/v2/scheduled-maintenances/upcoming.json").json
    [shown] = upcoming["scheduled_maintenances"]
    assert shown["name"] == "Pool rebalancing" and shown["status"] == "scheduled"
    assert "Pool rebalancing" in client.get("/status").text
    # Now: a window that has started.
    current = client.post(
        "/console/maintenance",
        data={
            "csrf_token": token,
            "title": "Pool hardware swap",
            "components": ["energy-pool"],
            "starts_at": (now - timedelta(minutes=1)).strftime(fmt),
            "ends_at": (now + timedelta(hours=1)).strftime(fmt),
        },
    )
    assert current.status_code == 303
    deliver(app)
    with app.app_context():
        mt = db.session.execute(
            db.select(Maintenance).where(Maintenance.title == "Pool hardware swap")
        ).scalar_one()
        assert mt.status == "in_progress" and mt.silence_id
        silence_id = mt.silence_id
    _wait(lambda: _silenced_by(am, "EnergyPoolLow") == [silence_id])
    assert _silenced_by(am, "PlatformApiSlow") == []
    body = client.get("/api/v2/summary.json").json
    states = {c["id"]: c["status"] for c in body["components"]}
    assert states["energy-pool"] == "under_maintenance" and states["api"] == "operational"
    assert body["status"]["indicator"] == "maintenance"

    # Finished early: the silence is removed, the alert is no longer silenced.
    finished = client.post(f"/console/maintenance/{mt.id}/finish", data={"csrf_token": token})
    assert finished.status_code == 303
    deliver(app)
    silence = requests.get(f"{am.url}/api/v2/silence/{silence_id}", timeout=5).json()
    assert silence["status"]["state"] == "expired"
    _wait(lambda: _silenced_by(am, "EnergyPoolLow") == [])
    again = client.post(f"/console/maintenance/{mt.id}/finish", data={"csrf_token": token})
    assert again.status_code == 409
    with app.app_context():
        actions = [
            a.action
            for a in db.session.execute(
                db.select(StatusAudit)
                .where(StatusAudit.maintenance_id == mt.id)
                .order_by(StatusAudit.id)
            ).scalars()
        ]
    assert actions == ["scheduled", "in_progress", "silenced", "finished_early", "unsilenced"]
    states = {c["id"]: c["status"] for c in client.get("/api/v2/summary.json").json["components"]}
    assert states["energy-pool"] == "operational"

    received = deliver_until(app, http_sink, 4, "/a")
    # Each once (posts run concurrently: their order is not the events' order).
    types = sorted(json.loads(r.body)["type"] for r in received)
    assert types == [
        "maintenance.completed",
        "maintenance.scheduled",
        "maintenance.scheduled",
        "maintenance.started",
    ]
    time.sleep(0.5)
    deliver(app)
    assert len(http_sink.received("/a")) == 4


def test_bad_windows_are_refused(make_app):
    app = make_app()
    keys = partners(app)
    client = app.test_client()
    token = signed_in(client, Party("staff", keys.staff_id, keys.staff))
    base = {"csrf_token": token, "title": "x", "components": ["api"]}
    for starts, ends in (
        ("2030-01-01T10:00", "2030-01-01T09:00"),
        ("2020-01-01T10:00", "2020-01-01T11:00"),
        ("soon", "2030-01-01T09:00"),
    ):
        response = client.post(
            "/console/maintenance", data={**base, "starts_at": starts, "ends_at": ends}
        )
        assert response.status_code == 422, (starts, ends)
        assert "Not scheduled" in response.text
    response = client.post(
        "/console/maintenance",
        data={**base, "components": ["nope"], "starts_at": "2030-01-01T10:00",
              "ends_at": "2030-01-01T11:00"},
    )  # fmt: skip
    assert response.status_code == 422
    assert (
        client.post("/console/maintenance/999/finish", data={"csrf_token": token}).status_code
        == 404
    )
