"""The console's incident pages: open by hand, publish, update, resolve; refusals are 4xx."""

from __future__ import annotations

import re

from tests.harness.console import csrf_token, signed_in
from tests.harness.seed import Party, partners
from tests.harness.webhooks import TOKEN
from tests.status.test_receiver import notification


def test_staff_publish_update_and_resolve_in_the_console(make_app):
    app = make_app()
    keys = partners(app)
    client = app.test_client()
    token = signed_in(client, Party("staff", keys.staff_id, keys.staff))
    # An alert opens a draft; the list shows it, the page does not.
    app.test_client().post(
        "/internal/alertmanager/incidents",
        json=notification(),
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    listing = client.get("/console/incidents")
    assert listing.status_code == 200 and "Drafts (1)" in listing.text
    incident_id = int(re.search(r"/console/incidents/(\d+)", listing.text).group(1))
    path = f"/console/incidents/{incident_id}"
    assert "Draft" in client.get(path).text
    assert client.get("/api/v2/summary.json").json["incidents"] == []

    published = client.post(
        f"{path}/publish",
        data={"csrf_token": token, "title": "Energy purchases fail", "body": "We are on it."},
    )
    assert published.status_code == 303
    [shown] = client.get("/api/v2/summary.json").json["incidents"]
    assert shown["name"] == "Energy purchases fail"
    assert shown["incident_updates"][0]["body"] == "We are on it."
    # Publishing twice is refused with its reason, not a 5xx.
    again = client.post(f"{path}/publish", data={"csrf_token": token})
    assert again.status_code == 409 and "already published" in again.text

    bad = client.post(f"{path}/updates", data={"csrf_token": token, "status": "odd", "body": "x"})
    assert bad.status_code == 422
    empty = client.post(f"{path}/updates", data={"csrf_token": token, "status": "identified"})
    assert empty.status_code == 422
    ok = client.post(
        f"{path}/updates", data={"csrf_token": token, "status": "identified", "body": "Found it."}
    )
    assert ok.status_code == 303
    assert client.get("/api/v2/summary.json").json["incidents"][0]["status"] == "identified"
    resolved = client.post(f"{path}/resolve", data={"csrf_token": token, "body": "Fixed."})
    assert resolved.status_code == 303
    body = client.get("/api/v2/summary.json").json
    assert body["incidents"] == [] and body["status"]["indicator"] == "none"
    page = client.get(path).text
    for action in ("opened", "published", "update"):
        assert f"<td>{action}</td>" in page
    # Without the CSRF token nothing changes.
    assert client.post(f"{path}/resolve", data={}).status_code == 400
    assert client.get("/console/incidents/999999").status_code == 404


def test_an_incident_opened_by_hand(make_app):
    app = make_app()
    keys = partners(app)
    client = app.test_client()
    token = signed_in(client, Party("staff", keys.staff_id, keys.staff))
    refused = client.post(
        "/console/incidents",
        data={"csrf_token": token, "title": "Slow API", "components": ["nope"], "body": "x"},
    )
    assert refused.status_code == 422 and "Not opened" in refused.text
    opened = client.post(
        "/console/incidents",
        data={
            "csrf_token": token,
            "title": "Slow API",
            "components": ["api"],
            "impact": "major",
            "body": "Requests are slow.",
            "publish": "1",
        },
    )
    assert opened.status_code == 303
    body = client.get("/api/v2/summary.json").json
    assert body["status"]["indicator"] == "major"
    assert {c["id"]: c["status"] for c in body["components"]}["api"] == "partial_outage"
    # Partners cannot reach the console pages.
    partner = app.test_client()
    assert partner.get("/console/incidents").status_code in (302, 303)
    assert csrf_token(client, "/console/incidents")
