"""The Alertmanager receiver: bearer token, partner events, one delivery per notification."""

from __future__ import annotations

from tests.harness.outbox import deliver
from tests.harness.seed import partners
from tests.harness.webhooks import TOKEN, deliver_until, register

PATH = "/internal/alertmanager/partner-alerts"


def notification(partner, status="firing", starts="2024-05-01T09:00:00Z", fingerprint="f1"):
    return {
        "version": "4",
        "groupKey": f'{{}}/{{scope="partner"}}:{{partner="{partner}"}}',
        "status": status,
        "receiver": "partner-webhooks",
        "truncatedAlerts": 0,
        "groupLabels": {"partner": str(partner)},
        "externalURL": "http://am",
        "alerts": [
            {
                "status": status,
                "fingerprint": fingerprint,
                "startsAt": starts,
                "endsAt": "2024-05-01T09:10:00Z"
                if status == "resolved"
                else "0001-01-01T00:00:00Z",
                "labels": {
                    "alertname": "PartnerTransactionFailureRatioHigh",
                    "partner": str(partner),
                    "severity": "warning",
                    "team": "support",
                    "scope": "partner",
                },
                "annotations": {
                    "summary": "30% of your transactions fail",
                    "description": "Over 10%...",
                    "runbook_url": "https://internal/runbook",
                },
            }
        ],
    }


def post(app, body, token=TOKEN, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return app.test_client().post(PATH, json=body, headers=headers, **kwargs)


def test_the_receiver_needs_its_bearer_token(make_app):
    app = make_app()
    keys = partners(app)
    for token in (None, "wrong-token-wrong-token", TOKEN[:-1]):
        response = post(app, notification(keys.a_id), token=token)
        assert response.status_code == 401 and response.json["error"]["code"] == "unauthorized"
    # A partner's API key is no use either.
    response = app.test_client().post(
        PATH, json=notification(keys.a_id), headers={"X-API-Key": keys.a}
    )
    assert response.status_code == 401


def test_without_a_token_file_there_is_no_receiver(make_app):
    app = make_app(receiver_token_file=None)
    assert post(app, notification(1)).status_code == 404


def test_invalid_notifications_are_a_422_or_415(make_app):
    app = make_app()
    for body in (
        {},
        {"groupKey": "x", "status": "firing"},
        {"groupKey": "x", "status": "odd", "alerts": []},
        {"groupKey": "x", "status": "firing", "alerts": [{"status": "firing"}]},
        [1],
    ):
        response = post(app, body)
        assert response.status_code == 422, (body, response.json)
    response = app.test_client().post(
        PATH, data="x", headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "text/plain"}
    )
    assert response.status_code == 415


def test_a_partner_alert_reaches_only_that_partner_once_per_notification(make_app, http_sink):
    app = make_app(duplicate_window="1m")
    keys = partners(app)
    a = register(app, keys.a, http_sink.url + "/a", events=["alert.firing", "alert.resolved"])
    register(app, keys.b, http_sink.url + "/b")
    first = post(app, notification(keys.a_id))
    assert first.status_code == 200 and first.json == {"queued": 1, "duplicates": 0, "ignored": 0}
    # Alertmanager retried, or its HA peer sent the same notification.
    again = post(app, notification(keys.a_id))
    assert again.json == {"queued": 0, "duplicates": 1, "ignored": 0}
    [request] = deliver_until(app, http_sink, 1, "/a")
    deliver(app)
    assert len(http_sink.received("/a")) == 1 and http_sink.received("/b") == []
    event = request.json
    assert event["type"] == "alert.firing" and event["partner_id"] == keys.a_id
    assert event["data"] == {
        "alert": "PartnerTransactionFailureRatioHigh",
        "status": "firing",
        "severity": "warning",
        "summary": "30% of your transactions fail",
        "description": "Over 10%...",
        "starts_at": "2024-05-01T09:00:00Z",
        "ends_at": None,
    }
    assert "runbook" not in request.body.decode() and "team" not in event["data"]

    resolved = post(app, notification(keys.a_id, status="resolved"))
    assert resolved.json["queued"] == 1
    deliver_until(app, http_sink, 2, "/a")
    assert http_sink.received("/a")[1].json["type"] == "alert.resolved"
    assert http_sink.received("/a")[1].json["data"]["ends_at"] == "2024-05-01T09:10:00Z"
    assert a["id"]


def test_a_repeat_after_the_window_is_delivered_again(make_app, http_sink):
    import time

    app = make_app(duplicate_window="1s")
    keys = partners(app)
    register(app, keys.a, http_sink.url + "/a")
    assert post(app, notification(keys.a_id)).json["queued"] == 1
    time.sleep(1.2)  # Alertmanager's repeat_interval passed: a real repeat
    assert post(app, notification(keys.a_id)).json["queued"] == 1
    requests = deliver_until(app, http_sink, 2, "/a")
    assert requests[0].json["id"] != requests[1].json["id"]


def test_alerts_without_a_known_partner_are_ignored(make_app, http_sink):
    app = make_app()
    partners(app)
    body = notification("99999")
    body["alerts"].append({**body["alerts"][0], "labels": {"alertname": "X"}})
    body["alerts"].append({**body["alerts"][0], "labels": {"alertname": "Y", "partner": "abc"}})
    assert post(app, body).json == {"queued": 0, "duplicates": 0, "ignored": 3}
