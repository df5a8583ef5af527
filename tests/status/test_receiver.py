"""Platform alerts from Alertmanager: draft incidents, nothing public until staff publish."""

from __future__ import annotations

import json

from tests.harness.seed import partners
from tests.harness.webhooks import TOKEN, deliver_until, register
from ticketing.db import db
from ticketing.status import incidents
from ticketing.status.models import Incident, StatusAudit

PATH = "/internal/alertmanager/incidents"


def notification(status="firing", component="energy-pool", severity="critical", fp="e1",
                 starts="2026-01-01T09:00:00Z", alertname="EnergyPoolCritical"):  # fmt: skip
    return {
        "version": "4",
        "groupKey": f'{{}}/{{component=~".+"}}:{{component="{component}"}}',
        "status": status,
        "receiver": "status-incidents",
        "alerts": [
            {
                "status": status,
                "fingerprint": fp,
                "startsAt": starts,
                "endsAt": "0001-01-01T00:00:00Z",
                "labels": {
                    "alertname": alertname,
                    "severity": severity,
                    "team": "oncall",
                    "component": component,
                    "pool": "main",
                },
                "annotations": {"summary": "Energy pool main is at 15%"},
            }
        ],
    }


def post(app, body, token=TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return app.test_client().post(PATH, json=body, headers=headers)


def summary(app):
    response = app.test_client().get("/api/v2/summary.json")
    assert response.status_code == 200
    return response.json


def test_the_receiver_needs_its_token_and_valid_json(make_app):
    app = make_app()
    for token in (None, "wrong-token-wrong-token"):
        response = post(app, notification(), token=token)
        assert response.status_code == 401 and response.json["error"]["code"] == "unauthorized"
    for body in ({}, {"groupKey": "x", "status": "odd", "alerts": []}, [1]):
        assert post(app, body).status_code == 422
    response = app.test_client().post(
        PATH, data="x", headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert summary(app)["incidents"] == []


def test_a_firing_alert_opens_one_draft_that_partners_do_not_see(make_app):
    app = make_app()
    first = post(app, notification())
    assert first.status_code == 200 and first.json == {
        "recorded": 1, "opened": 1, "duplicates": 0, "ignored": 0,
    }  # fmt: skip
    # Alertmanager's retry, the other Alertmanager of a pair: nothing more.
    again = post(app, notification())
    assert again.json == {"recorded": 0, "opened": 0, "duplicates": 1, "ignored": 0}
    # An alert of no configured component is ignored.
    other = post(app, notification(component="nowhere", fp="x9"))
    assert other.json["ignored"] == 1
    with app.app_context():
        [incident] = db.session.execute(db.select(Incident)).scalars()
        assert incident.published_at is None and incident.source == "alert"
        assert incident.components == ["energy-pool"] and incident.impact == "critical"
        assert "Energy pool main is at 15%" in incident.title
    body = summary(app)
    assert body["incidents"] == [] and body["status"]["indicator"] == "none"
    assert {c["id"]: c["status"] for c in body["components"]}["energy-pool"] == "operational"
    page = app.test_client().get("/status").get_data(as_text=True)
    assert "All Systems Operational" in page and "15%" not in page


def test_publish_update_resolve_and_the_partner_events(make_app, http_sink):
    app = make_app()
    keys = partners(app)
    register(app, keys.a, http_sink.url + "/a")
    register(app, keys.b, http_sink.url + "/b", events=["alert.firing"])  # no incident events
    post(app, notification())
    with app.app_context():
        incident = db.session.execute(db.select(Incident)).scalar_one()
        incidents.publish(incident, ("staff", keys.staff_id))
        db.session.commit()
        incident_id = incident.id
    body = summary(app)
    assert body["status"] == {"indicator": "critical", "description": "Major System Outage"}
    [shown] = body["incidents"]
    assert shown["id"] == str(incident_id) and shown["status"] == "investigating"
    assert shown["incident_updates"][0]["body"].startswith("We are investigating")
    assert {c["id"]: c["status"] for c in body["components"]}["energy-pool"] == "major_outage"
    page = app.test_client().get("/status").get_data(as_text=True)
    assert "Major System Outage" in page and f'id="incident-{incident_id}"' in page

    # The same alert again changes nothing; its new firing after a resolve is noted.
    assert post(app, notification()).json["duplicates"] == 1
    post(app, notification(status="resolved"))
    with app.app_context():
        incident = db.session.get(Incident, incident_id)
        incidents.post_update(
            incident, "monitoring", "The pool is refilled.", ("staff", keys.staff_id)
        )
        incidents.resolve(incident, "", ("staff", keys.staff_id))
        db.session.commit()
        actions = [a.action for a in db.session.execute(
            db.select(StatusAudit).where(StatusAudit.incident_id == incident_id)
            .order_by(StatusAudit.id)).scalars()]  # fmt: skip
    assert actions == ["opened", "published", "alert_resolved", "update", "update"]
    body = summary(app)
    assert body["status"]["indicator"] == "none" and body["incidents"] == []
    listed = app.test_client().get("/api/v2/incidents.json").json["incidents"]
    assert listed[0]["status"] == "resolved" and listed[0]["resolved_at"]
    assert listed[0]["monitoring_at"]

    received = deliver_until(app, http_sink, 3, "/a")
    # Each once (posts run concurrently: their order is not the events' order).
    events = {json.loads(r.body)["type"]: json.loads(r.body) for r in received}
    assert sorted(events) == ["incident.created", "incident.resolved", "incident.updated"]
    assert events["incident.created"]["data"]["incident"]["id"] == incident_id
    assert http_sink.received("/b") == []


def test_auto_publish_for_chosen_severities(make_app):
    app = make_app(auto_publish=["critical"])
    post(
        app, notification(severity="warning", fp="w1", component="api", alertname="PlatformApiSlow")
    )
    post(app, notification())
    body = summary(app)
    assert [i["components"][0]["id"] for i in body["incidents"]] == ["energy-pool"]
    with app.app_context():
        drafts = (
            db.session.execute(db.select(Incident).where(Incident.published_at.is_(None)))
            .scalars()
            .all()
        )
        assert [d.components for d in drafts] == [["api"]]


def test_a_second_alert_joins_the_open_incident(make_app):
    app = make_app()
    post(app, notification())
    post(app, notification(severity="warning", fp="e2", alertname="EnergyPoolLow"))
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(Incident.id))).scalar_one() == 1


def test_the_feed_and_the_json_endpoints(make_app):
    app = make_app()
    client = app.test_client()
    for path in ("status.json", "components.json", "incidents.json", "incidents/unresolved.json",
                 "scheduled-maintenances.json", "scheduled-maintenances/upcoming.json",
                 "scheduled-maintenances/active.json"):  # fmt: skip
        response = client.get(f"/api/v2/{path}")
        assert response.status_code == 200 and response.json["page"]["id"] == "partnerwatch"
    assert [c["id"] for c in client.get("/api/v2/components.json").json["components"]] == [
        "api", "transactions", "energy-pool", "support",
    ]  # fmt: skip
    feed = client.get("/status/feed.atom")
    assert feed.status_code == 200 and feed.mimetype == "application/atom+xml"
    assert b'<feed xmlns="http://www.w3.org/2005/Atom">' in feed.data
    live = client.get("/status/live")
    assert live.status_code == 200 and b"Components" in live.data


def test_nul_characters_are_no_server_error(make_app):
    app = make_app()
    body = notification(fp="n\x00ul")
    body["alerts"][0]["annotations"]["summary"] = "pool \x00 low"
    body["alerts"][0]["labels"]["alertname"] = "Energy\x00PoolCritical"
    assert post(app, body).status_code == 200


def test_the_shared_model_is_read_once_and_forgotten_on_a_change(make_app):
    app = make_app(cache_ttl="1h")  # as shipped (1s), but long enough to see it kept
    keys = partners(app)
    client = app.test_client()
    first = client.get("/api/v2/summary.json")
    assert client.get("/api/v2/summary.json").data == first.data
    assert client.get("/status").status_code == 200
    # A partner's view reads the shared model too; its own rows stay usable.
    mine = client.get("/api/v1/status", headers={"X-API-Key": keys.a})
    assert mine.status_code == 200 and mine.json["status"]["indicator"] == "none"
    post(app, notification())
    with app.app_context():
        incident = db.session.execute(db.select(Incident)).scalar_one()
        incidents.publish(incident, ("staff", keys.staff_id))
        db.session.commit()
    # Kept: the change was not made through a route that forgets the model ...
    assert summary(app)["incidents"] == []
    with app.test_request_context():
        from ticketing.status import page

        page.invalidate()
    # ... and forgotten: the next request reads the database again.
    assert summary(app)["status"]["indicator"] == "critical"
    assert client.get("/api/v1/status", headers={"X-API-Key": keys.a}).status_code == 200
