"""The per-partner view: the public status plus the partner's own alerts and open tickets,
by API key and by a rotatable private link; never another partner's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.harness.seed import partners
from tests.status.test_maintenance import AM_CONFIG


def _partner_alert(partner_id: int, summary: str) -> dict:
    now = datetime.now(UTC)
    return {
        "labels": {
            "alertname": "PartnerTransactionFailureRatioHigh",
            "scope": "partner",
            "partner": str(partner_id),
            "severity": "warning",
            "team": "support",
        },
        "annotations": {"summary": summary, "description": "Over 10% failed."},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(hours=1)).isoformat(),
    }


def test_each_partner_sees_its_own_alerts_and_tickets_only(make_app, alertmanager_factory):
    am = alertmanager_factory(AM_CONFIG)
    app = make_app(alertmanager_url=am.url)
    keys = partners(app)
    am.post_alerts(
        [_partner_alert(keys.a_id, "A: 30% fail"), _partner_alert(keys.b_id, "B: 50% fail")]
    )
    client = app.test_client()
    for key, title in ((keys.a, "A's ticket"), (keys.b, "B's ticket")):
        response = client.post(
            "/api/v1/tickets",
            json={"title": title, "description": "Transactions fail sometimes."},
            headers={"X-API-Key": key},
        )
        assert response.status_code == 201, response.json

    a = client.get("/api/v1/status", headers={"X-API-Key": keys.a}).json
    assert a["status"]["indicator"] == "none" and len(a["components"]) == 4
    assert [x["summary"] for x in a["partner"]["alerts"]] == ["A: 30% fail"]
    assert [t["title"] for t in a["partner"]["tickets"]] == ["A's ticket"]
    assert set(a["partner"]["alerts"][0]) == {
        "alert",
        "status",
        "severity",
        "summary",
        "description",
        "starts_at",
    }  # fmt: skip  (what its webhooks carry: no team, runbook or other labels)
    b = client.get("/api/v1/status", headers={"X-API-Key": keys.b}).json
    assert [x["summary"] for x in b["partner"]["alerts"]] == ["B: 50% fail"]
    assert client.get("/api/v1/status").status_code == 401
    assert client.get("/api/v1/status", headers={"X-API-Key": keys.staff}).status_code == 403

    # The private link: the same, without a key; rotating it ends the old one.
    first = client.post("/api/v1/status/link", headers={"X-API-Key": keys.a}).json
    path = first["url"].removeprefix("http://localhost")
    page = client.get(path)
    assert page.status_code == 200
    assert "A: 30% fail" in page.text and "A&#39;s ticket" in page.text
    assert "B: 50% fail" not in page.text and "B&#39;s ticket" not in page.text
    assert "A: 30% fail" in client.get(path + "/live").text
    feed = client.get(first["feed"].removeprefix("http://localhost"))
    assert (
        feed.status_code == 200 and b"A&#39;s ticket" in feed.data and b"B&#39;s" not in feed.data
    )
    second = client.post("/api/v1/status/link", headers={"X-API-Key": keys.a}).json
    assert second["url"] != first["url"]
    assert client.get(path).status_code == 404
    assert client.get(second["url"].removeprefix("http://localhost")).status_code == 200
    assert client.delete("/api/v1/status/link", headers={"X-API-Key": keys.a}).status_code == 204
    assert client.get(second["url"].removeprefix("http://localhost")).status_code == 404
    assert client.get("/status/p/" + "x" * 500).status_code == 404
    # The public page shows nobody's.
    public = client.get("/status").text
    assert "A: 30% fail" not in public and "partner-view" not in public


def test_without_alertmanager_the_view_says_so(make_app):
    app = make_app(alertmanager_url="http://127.0.0.1:9")
    keys = partners(app)
    body = app.test_client().get("/api/v1/status", headers={"X-API-Key": keys.a}).json
    assert body["partner"]["alerts"] is None and "Alertmanager" in body["partner"]["alerts_error"]
    assert body["partner"]["tickets"] == []
