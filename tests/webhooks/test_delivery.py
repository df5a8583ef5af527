"""Deliveries to a real HTTP endpoint: signed, retried, logged, never leaking across partners."""

from __future__ import annotations

import json
import time

from tests.harness.outbox import deliver
from tests.harness.seed import partners
from tests.harness.webhooks import deliver_until, partner_verifies, register
from ticketing.db import db


def log_of(app, key, endpoint_id) -> list[dict]:
    response = app.test_client().get(
        f"/api/v1/webhooks/{endpoint_id}/deliveries", headers={"X-API-Key": key}
    )
    assert response.status_code == 200, response.json
    return response.json["items"]


def test_ping_is_signed_and_the_partner_verifies_it(make_app, http_sink):
    app = make_app()
    keys = partners(app)
    endpoint = register(app, keys.a, http_sink.url + "/a")
    response = app.test_client().post(
        f"/api/v1/webhooks/{endpoint['id']}/ping", headers={"X-API-Key": keys.a}
    )
    assert response.status_code == 202
    [request] = deliver_until(app, http_sink, 1, "/a")
    assert partner_verifies(endpoint["secret"], request.headers, request.body)
    assert not partner_verifies("whsec_wrong", request.headers, request.body)
    assert not partner_verifies(endpoint["secret"], request.headers, request.body + b" ")
    event = request.json
    assert event["id"] == response.json["event_id"] == request.headers["Partnerwatch-Event-Id"]
    assert event["type"] == "ping" and event["partner_id"] == keys.a_id
    assert event["data"] == {"endpoint_id": endpoint["id"]} and event["created_at"].endswith("Z")
    assert request.headers["Content-Type"] == "application/json"

    [entry] = log_of(app, keys.a, endpoint["id"])
    assert entry["result"] == "success" and entry["status_code"] == 200
    assert entry["attempt"] == 1 and entry["event_type"] == "ping"
    assert entry["latency_ms"] is not None and entry["event_id"] == event["id"]


def test_ticketing_verify_matches_the_partner_check(make_app, http_sink):
    from ticketing.webhooks import signing

    body = b'{"id":"evt_1"}'
    header = signing.signature_header("whsec_x", body)
    assert signing.verify("whsec_x", header, body)
    assert partner_verifies("whsec_x", {"Partnerwatch-Signature": header}, body)
    old = signing.signature_header("whsec_x", body, timestamp=int(time.time()) - 3600)
    assert not signing.verify("whsec_x", old, body)
    assert not signing.verify("whsec_x", "garbage", body)


def test_500_twice_then_200_arrives_on_the_third_attempt(make_app, http_sink):
    app = make_app()
    keys = partners(app)
    endpoint = register(app, keys.a, http_sink.url + "/flaky")
    http_sink.script("/flaky", [500, 500])
    app.test_client().post(f"/api/v1/webhooks/{endpoint['id']}/ping", headers={"X-API-Key": keys.a})
    requests = deliver_until(app, http_sink, 3, "/flaky")
    assert len({r.json["id"] for r in requests}) == 1  # one event, three attempts
    assert [r.headers["Partnerwatch-Delivery-Attempt"] for r in requests] == ["1", "2", "3"]
    assert all(partner_verifies(endpoint["secret"], r.headers, r.body) for r in requests)
    assert [r.body for r in requests] == [requests[0].body] * 3
    log = log_of(app, keys.a, endpoint["id"])  # newest first
    assert [(e["attempt"], e["result"], e["status_code"]) for e in log] == [
        (3, "success", 200),
        (2, "retry", 500),
        (1, "retry", 500),
    ]
    # Delivered: nothing more is sent.
    deliver(app)
    time.sleep(0.3)
    deliver(app)
    assert len(http_sink.received("/flaky")) == 3
    current = (
        app.test_client()
        .get(f"/api/v1/webhooks/{endpoint['id']}", headers={"X-API-Key": keys.a})
        .json
    )
    assert current["failing_since"] is None and current["enabled"]


def test_a_4xx_is_not_retried_but_408_and_429_are(make_app, http_sink):
    app = make_app()
    keys = partners(app)
    gone = register(app, keys.a, http_sink.url + "/gone")
    busy = register(app, keys.a, http_sink.url + "/busy")
    http_sink.responses["/gone"] = (404, b"no such hook")
    http_sink.script("/busy", [429, 408])
    for endpoint in (gone, busy):
        app.test_client().post(
            f"/api/v1/webhooks/{endpoint['id']}/ping", headers={"X-API-Key": keys.a}
        )
    deliver_until(app, http_sink, 3, "/busy")
    for _ in range(3):
        deliver(app)
        time.sleep(0.25)
    assert len(http_sink.received("/gone")) == 1
    [entry] = log_of(app, keys.a, gone["id"])
    assert entry["result"] == "failed" and entry["status_code"] == 404
    assert [e["result"] for e in log_of(app, keys.a, busy["id"])] == ["success", "retry", "retry"]


def test_timeouts_and_refused_connections_are_retried(make_app, http_sink):
    from tests.harness import free_port

    app = make_app()
    keys = partners(app)
    endpoint = register(app, keys.a, f"http://127.0.0.1:{free_port()}/down")
    app.test_client().post(f"/api/v1/webhooks/{endpoint['id']}/ping", headers={"X-API-Key": keys.a})
    deliver(app)
    time.sleep(0.3)
    deliver(app)
    log = log_of(app, keys.a, endpoint["id"])
    assert len(log) >= 2 and {e["result"] for e in log} == {"retry"}
    assert "ConnectionError" in log[0]["error"] and log[0]["status_code"] is None


def test_an_endpoint_failing_too_long_is_disabled_and_the_partner_told(make_app, http_sink):
    app = make_app(disable_after="1s")
    keys = partners(app)
    failing = register(app, keys.a, http_sink.url + "/failing")
    other = register(app, keys.a, http_sink.url + "/other", events=["endpoint.disabled"])
    http_sink.responses["/failing"] = (503, b"down")
    app.test_client().post(f"/api/v1/webhooks/{failing['id']}/ping", headers={"X-API-Key": keys.a})
    deliver_until(app, http_sink, 1, "/other", timeout=20)
    [notice] = http_sink.received("/other")
    assert notice.json["type"] == "endpoint.disabled"
    assert notice.json["data"]["endpoint_id"] == failing["id"]
    assert partner_verifies(other["secret"], notice.headers, notice.body)
    current = (
        app.test_client()
        .get(f"/api/v1/webhooks/{failing['id']}", headers={"X-API-Key": keys.a})
        .json
    )
    assert current["enabled"] is False and "disabled automatically" in current["disabled_reason"]
    attempts = len(http_sink.received("/failing"))
    deliver(app)
    assert len(http_sink.received("/failing")) == attempts  # nothing more is sent to it
    # The partner turns it on again once fixed.
    again = (
        app.test_client()
        .patch(
            f"/api/v1/webhooks/{failing['id']}",
            json={"enabled": True},
            headers={"X-API-Key": keys.a},
        )
        .json
    )
    assert again["enabled"] and again["disabled_reason"] is None


def test_a_url_that_became_private_is_blocked_at_delivery(make_app, http_sink):
    registering = make_app()  # allows the loopback sink
    keys = partners(registering)
    endpoint = register(registering, keys.a, http_sink.url + "/private")
    strict = make_app(allowed_networks=[])  # the shipped guard, same database
    strict.test_client().post(
        f"/api/v1/webhooks/{endpoint['id']}/ping", headers={"X-API-Key": keys.a}
    )
    deliver(strict)
    assert http_sink.received("/private") == []
    [entry] = log_of(strict, keys.a, endpoint["id"])
    assert entry["result"] == "blocked" and "127.0.0.1" in entry["error"]


def _staff(app, keys, method, path, **body):
    response = getattr(app.test_client(), method)(
        path, json=body, headers={"X-API-Key": keys.staff}
    )
    assert response.status_code < 300, response.json
    return response.json


def test_ticket_events_reach_only_their_partner_and_never_internal_notes(make_app, http_sink):
    app = make_app()
    keys = partners(app)
    a = register(app, keys.a, http_sink.url + "/a")
    register(app, keys.b, http_sink.url + "/b")
    ticket = (
        app.test_client()
        .post(
            "/api/v1/tickets",
            json={"title": "Invoice question", "description": "Wrong amount."},
            headers={"X-API-Key": keys.a},
        )
        .json
    )
    base = f"/api/v1/staff/tickets/{ticket['id']}"
    _staff(app, keys, "post", base + "/messages", body="Internal: check billing", internal=True)
    _staff(app, keys, "post", base + "/messages", body="We are looking into it.")
    _staff(app, keys, "post", base + "/status", status="in_progress")
    deliver_until(app, http_sink, 2, "/a")
    deliver(app)
    received = http_sink.received("/a")
    assert [r.json["type"] for r in received] == ["ticket.staff_replied", "ticket.status_changed"]
    replied, changed = (r.json for r in received)
    assert replied["data"]["message"]["body"] == "We are looking into it."
    assert replied["data"]["ticket"]["id"] == ticket["id"]
    assert changed["data"]["from"] == "open" and changed["data"]["to"] == "in_progress"
    assert all("Internal" not in r.body.decode() for r in received)
    assert all(partner_verifies(a["secret"], r.headers, r.body) for r in received)
    assert http_sink.received("/b") == []


def test_events_wait_in_the_outbox_through_an_outage(make_app, http_sink):
    from ticketing.outbox import OutboxMessage

    app = make_app()
    keys = partners(app)
    endpoint = register(app, keys.a, http_sink.url + "/later")
    http_sink.responses["/later"] = (503, b"")
    app.test_client().post(f"/api/v1/webhooks/{endpoint['id']}/ping", headers={"X-API-Key": keys.a})
    deliver(app)
    with app.app_context():
        [row] = db.session.execute(
            db.select(OutboxMessage).where(OutboxMessage.kind == "partner_webhook")
        ).scalars()
        assert row.delivered_at is None and row.attempts == 1 and "503" in row.last_error
    # A new process (another app on the same database) delivers it once the partner is back.
    del http_sink.responses["/later"]
    restarted = make_app()
    requests = deliver_until(restarted, http_sink, 2, "/later")
    assert requests[0].json["id"] == requests[1].json["id"]
    assert json.loads(requests[1].body)["type"] == "ping"
