"""Deliveries run concurrently: a hanging endpoint holds only its own slots, and an
endpoint that keeps failing has its circuit opened, then probed."""

from __future__ import annotations

import threading
import time

from tests.harness.outbox import deliver
from tests.harness.seed import partners
from tests.harness.sinks import HangingSink
from tests.harness.webhooks import deliver_until, register


def ping(app, key, endpoint_id) -> None:
    response = app.test_client().post(
        f"/api/v1/webhooks/{endpoint_id}/ping", headers={"X-API-Key": key}
    )
    assert response.status_code == 202, response.json


def log_of(app, key, endpoint_id) -> list[dict]:
    response = app.test_client().get(
        f"/api/v1/webhooks/{endpoint_id}/deliveries", headers={"X-API-Key": key}
    )
    assert response.status_code == 200, response.json
    return response.json["items"]


def test_a_hanging_endpoint_does_not_hold_the_others(make_app, http_sink):
    # connect 1 s + read 6 s stays under the tests' 10 s claim timeout.
    app = make_app(read_timeout="6s", delivery={"concurrency": 8, "per_endpoint": 2})
    keys = partners(app)
    with HangingSink() as hanging:
        stuck = register(app, keys.a, hanging.url + "/hang")
        others = [
            (keys.a, register(app, keys.a, http_sink.url + "/a1")),
            (keys.a, register(app, keys.a, http_sink.url + "/a2")),
            (keys.b, register(app, keys.b, http_sink.url + "/b1")),
            (keys.b, register(app, keys.b, http_sink.url + "/b2")),
        ]
        for _ in range(3):  # queued first: claimed before the others
            ping(app, keys.a, stuck["id"])
        for key, endpoint in others * 2:
            ping(app, key, endpoint["id"])

        started = time.monotonic()
        passing = threading.Thread(target=deliver, args=(app,))
        passing.start()
        try:
            http_sink.wait_for(8, timeout=30)
            while passing.is_alive() and not all(
                [e["result"] for e in log_of(app, key, endpoint["id"])] == ["success"] * 2
                for key, endpoint in others
            ):
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            print(f"8 deliveries to 4 endpoints logged in {elapsed:.2f}s beside a hanging one")
            # The others are all delivered and logged while the pass still waits for the
            # hanging endpoint's read timeout.
            assert passing.is_alive()
            assert log_of(app, keys.a, stuck["id"]) == []
        finally:
            passing.join(30)
        # At most per_endpoint (2) attempts to it at once; the third event was put back.
        assert hanging.accepted == 2
    log = log_of(app, keys.a, stuck["id"])
    assert [e["result"] for e in log] == ["retry", "retry"]
    assert all("Timeout" in e["error"] for e in log)


def test_a_failing_endpoint_s_circuit_opens_then_a_probe_closes_it(make_app, http_sink):
    app = make_app(delivery={"circuit_failures": 2, "circuit_open_for": "1s"})
    keys = partners(app)
    endpoint = register(app, keys.a, http_sink.url + "/down")
    http_sink.script("/down", [500, 500])
    ping(app, keys.a, endpoint["id"])
    deliver_until(app, http_sink, 2, "/down")
    time.sleep(0.3)  # past the retry's backoff (100-200 ms), before the probe
    deliver(app)
    assert len(http_sink.received("/down")) == 2  # not sent: the circuit is open
    log = log_of(app, keys.a, endpoint["id"])
    assert log[0]["result"] == "circuit_open" and "circuit" in log[0]["error"]
    assert "circuit opened after 2 consecutive failures" in log[1]["error"]

    [probe] = deliver_until(app, http_sink, 3, "/down")[2:]
    assert probe.headers["Partnerwatch-Delivery-Attempt"] == "3"
    results = [(e["attempt"], e["result"]) for e in log_of(app, keys.a, endpoint["id"])]
    assert results[0] == (3, "success")
    assert results[-2:] == [(2, "retry"), (1, "retry")]
    assert {r for _, r in results[1:-2]} == {"circuit_open"}
    deliver(app)
    assert len(http_sink.received("/down")) == 3
