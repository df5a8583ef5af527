"""The live feed end to end: the ticket service under gunicorn, real Prometheus and Alertmanager.

The shared server takes a snapshot every second; see conftest.py for what
Prometheus, Alertmanager and the ticketing database hold.
"""

from __future__ import annotations

import json
import signal
import socket
import threading

import pytest
import requests
import websocket

from tests.harness import wait_until
from tests.harness.live import ALERTS, BULK_ALERTS
from tests.harness.ws_clients import connect, receive, receive_type, wait_closed
from ticketing.live.snapshot import QUERIES


def _welcome(ws) -> dict:
    message = receive(ws)
    assert message["type"] == "welcome", message
    return message["data"]


def _first_snapshot(server, key: str) -> tuple[dict, dict]:
    """(welcome, first snapshot) of a client connecting with ``key``, then gone."""
    ws = connect(server.ws_url, key)
    try:
        welcome = _welcome(ws)
        return welcome, receive_type(ws, "snapshot")["data"]
    finally:
        ws.close()


# ------------------------------------------------------------------ snapshots


def test_snapshots_are_pushed_every_interval_and_get_metrics_is_answered(live_server):
    ws = connect(live_server.ws_url, live_server.data.staff_key)
    try:
        welcome = _welcome(ws)
        assert welcome["actor"] == {"kind": "staff", "id": 1, "name": "Sam Agent"}
        assert welcome["interval"] == 1.0

        first = receive_type(ws, "snapshot")
        second = receive_type(ws, "snapshot")
        third = receive_type(ws, "snapshot")
        assert [second["seq"], third["seq"]] == [first["seq"] + 1, first["seq"] + 2]
        assert first["timestamp"] < second["timestamp"] < third["timestamp"]
        assert set(first) == {"type", "seq", "timestamp", "data"}

        ws.send(json.dumps({"type": "get_metrics"}))
        seen = {m["seq"]: m for m in (first, second, third)}
        while True:
            message = receive(ws)
            if message["type"] == "metrics":
                break
            seen[message["seq"]] = message
        # The answer is the latest snapshot: the one just pushed or about to be.
        assert message["seq"] >= third["seq"]
        if message["seq"] not in seen:
            seen[message["seq"]] = receive_type(
                ws, "snapshot", predicate=lambda m: m["seq"] == message["seq"]
            )
        assert message["data"] == seen[message["seq"]]["data"]
        assert message["timestamp"] == seen[message["seq"]]["timestamp"]

        ws.send(json.dumps({"type": "ping"}))
        assert receive_type(ws, "pong")["type"] == "pong"
    finally:
        ws.close()


def _query_at(prometheus, name: str, at: float) -> list[dict]:
    data = prometheus.api("query", query=QUERIES[name], time=f"{at:.3f}")
    return data["result"]


def _values(result: list[dict], label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in result}


def _value(result: list[dict]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def test_values_are_what_prometheus_answers_for_the_same_queries(live_server, prometheus):
    _, snap = _first_snapshot(live_server, live_server.data.staff_key)
    assert snap["sources"]["prometheus"]["ok"] is True, snap["sources"]
    at = snap["sources"]["prometheus"]["evaluated_at"]

    # Every number, against the same query run by the test at the same time.
    up = _values(_query_at(prometheus, "api_up", at), "target")
    latency = _values(_query_at(prometheus, "api_latency", at), "target")
    p95 = _values(_query_at(prometheus, "api_latency_p95", at), "target")
    assert snap["api"] == {
        "up": True,
        "targets": {
            "platform": {
                "up": up["platform"] == 1,
                "latency_seconds": latency["platform"],
                "latency_p95_seconds": p95["platform"],
            }
        },
    }
    assert snap["service"]["error_ratio"] == _value(
        _query_at(prometheus, "service_error_ratio", at)
    )
    ratios = _values(_query_at(prometheus, "energy_pool_available_ratio", at), "pool")
    assert snap["energy_pools"] == {
        pool: {"available_ratio": ratio} for pool, ratio in ratios.items()
    }
    assert snap["transactions"] == {
        "rate_per_second": _values(_query_at(prometheus, "transaction_rate", at), "status"),
        "failure_ratio": _value(_query_at(prometheus, "transaction_failure_ratio", at)),
    }
    assert snap["partners"] == {"active": int(_value(_query_at(prometheus, "partners_active", at)))}
    open_tickets = _values(_query_at(prometheus, "open_tickets", at), "priority")
    assert snap["tickets"] == {
        "scope": "all",
        "open_by_priority": {
            p: int(open_tickets.get(p, 0)) for p in ("low", "medium", "high", "critical")
        },
    }

    # ... and those are the values the platform has (tests/live/conftest.py).
    assert snap["api"]["targets"]["platform"]["latency_seconds"] == 0.123
    assert snap["energy_pools"] == {
        "main": {"available_ratio": 0.25},
        "reserve": {"available_ratio": 0.9},
    }
    assert snap["partners"]["active"] == 7
    assert snap["tickets"]["open_by_priority"] == {"low": 2, "medium": 0, "high": 5, "critical": 0}
    assert snap["transactions"]["failure_ratio"] == pytest.approx(2 / 23, rel=0.1)
    assert snap["service"]["error_ratio"] == pytest.approx(0.1, rel=0.1)


# ------------------------------------------------------------------ who sees what


def test_staff_see_every_alert_in_full(live_server):
    _, snap = _first_snapshot(live_server, live_server.data.staff_key)
    alerts = snap["alerts"]
    names = {a["name"] for a in alerts["items"]}
    expected = {labels["alertname"] for labels, _ in ALERTS + BULK_ALERTS} - {"Watchdog"}
    assert names == expected  # all of them but the hidden heartbeat
    assert alerts["firing"] == len(expected) and alerts["truncated"] is False
    assert alerts["by_severity"] == {"critical": 2, "warning": 4, "info": len(BULK_ALERTS)}
    assert [a["severity"] for a in alerts["items"][:2]] == ["critical", "critical"]
    brute = next(a for a in alerts["items"] if a["name"] == "SecurityBruteForce")
    assert brute["team"] == "security" and brute["description"] == "from 10.0.0.7"
    assert snap["sources"]["alertmanager"] == {"ok": True}
    assert snap["sources"]["database"] == {"ok": True}


@pytest.mark.parametrize("partner", ["acme", "globex"])
def test_a_partner_sees_platform_status_its_own_tickets_and_public_alerts(live_server, partner):
    data = live_server.data
    key, partner_id = {
        "acme": (data.acme_key, data.acme_id),
        "globex": (data.globex_key, data.globex_id),
    }[partner]
    welcome, snap = _first_snapshot(live_server, key)
    assert welcome["actor"]["kind"] == "partner"
    # Platform-level status, as staff see it.
    assert snap["api"]["up"] is True
    assert snap["energy_pools"]["main"] == {"available_ratio": 0.25}
    assert snap["transactions"]["failure_ratio"] is not None
    # Its own open tickets, counted in the ticketing database.
    assert snap["tickets"] == {"scope": "own", "open_by_priority": data.open_tickets[partner_id]}
    assert "partners" not in snap  # how many customers the platform has is not theirs
    # Allow-listed platform alerts only, reduced; Globex also sees the one about itself.
    expected = {"PlatformApiDown", "EnergyPoolLow"} | (
        {"PlatformApiSlow"} if partner == "globex" else set()
    )
    assert {a["name"] for a in snap["alerts"]["items"]} == expected
    assert snap["alerts"]["firing"] == len(expected)
    for alert in snap["alerts"]["items"]:
        assert set(alert) == {"name", "severity", "summary", "starts_at"}
    text = json.dumps(snap)
    for internal in ("security", "internal", "runbook", "10.0.0.7", "BulkInfo", "TargetDown"):
        assert internal not in text
    assert snap["sources"] == {
        "prometheus": {"ok": True},
        "alertmanager": {"ok": True},
        "database": {"ok": True},
    }


def test_a_browser_authenticates_with_its_first_message(live_server):
    ws = connect(live_server.ws_url)
    try:
        ws.send(json.dumps({"type": "auth", "api_key": live_server.data.acme_key}))
        assert _welcome(ws)["actor"]["name"] == "Acme Energy"
        assert receive_type(ws, "snapshot")["data"]["tickets"]["scope"] == "own"
        ws.send(json.dumps({"type": "auth", "api_key": live_server.data.staff_key}))
        error = receive_type(ws, "error")["data"]
        assert error["code"] == "already_authenticated"
        assert receive_type(ws, "snapshot")["data"]["tickets"]["scope"] == "own"
    finally:
        ws.close()


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    "first_message",
    [
        None,  # says nothing
        {"type": "auth", "api_key": "pw_000000000000_" + "x" * 43},  # unknown key
        {"type": "auth"},  # no key
        {"type": "get_metrics"},  # not an auth message
        "not json",
    ],
)
def test_a_client_without_a_valid_key_is_closed_with_4401(live_server, first_message):
    # A key in the URL is not a credential: secrets do not go in URLs (logs, proxies).
    ws = connect(f"{live_server.ws_url}?api_key={live_server.data.staff_key}")
    try:
        if first_message is not None:
            ws.send(first_message if isinstance(first_message, str) else json.dumps(first_message))
        code, reason = wait_closed(ws)
    finally:
        ws.close()
    assert code == 4401, reason
    assert reason


def test_the_close_code_survives_a_ping_that_crosses_it(start_live_server):
    """A ping sent as the auth timeout closes the connection: the client's pong
    arrives after our close frame, and must not turn the close into a reset."""
    server = start_live_server(threads=16, auth_timeout="1s", ping_interval="1s")
    clients = [connect(server.ws_url) for _ in range(12)]
    try:
        codes = [wait_closed(ws)[0] for ws in clients]
    finally:
        for ws in clients:
            ws.close()
    assert codes == [4401] * len(clients)


def test_a_bad_key_header_is_refused_before_the_upgrade(live_server):
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        connect(live_server.ws_url, "pw_000000000000_" + "x" * 43)
    assert refused.value.status_code == 401
    assert json.loads(refused.value.resp_body)["error"]["code"] == "unauthorized"


def test_a_client_whose_key_is_revoked_is_closed_with_4401(live_server, ticketing_app):
    from ticketing.auth import issue_key
    from ticketing.db import db
    from ticketing.models import ApiKey, Partner, utcnow

    with ticketing_app.app_context():
        key, raw = issue_key(partner=db.session.get(Partner, live_server.data.globex_id))
        db.session.commit()
        key_id = key.id
    ws = connect(live_server.ws_url, raw)
    try:
        _welcome(ws)
        receive_type(ws, "snapshot")
        with ticketing_app.app_context():
            db.session.get(ApiKey, key_id).revoked_at = utcnow()
            db.session.commit()
        code, reason = wait_closed(ws)  # checked again every 2 s on this server
    finally:
        ws.close()
    assert (code, reason) == (4401, "the API key is no longer valid")


def _failed_auth_events(server) -> int:
    response = requests.get(
        f"{server.http_url}/api/v1/staff/security-events",
        params={"type": "FAILED_AUTH", "limit": 200},
        headers={"X-API-Key": server.data.admin_key},
        timeout=10,
    )
    response.raise_for_status()
    return sum(event["count"] for event in response.json()["items"])


def test_each_refused_client_is_one_failed_auth_for_the_security_monitor(live_server):
    before = _failed_auth_events(live_server)
    wrong = "pw_000000000000_" + "y" * 43
    with pytest.raises(websocket.WebSocketBadStatusException):
        connect(live_server.ws_url, wrong)  # in the header
    for first_message in ({"type": "auth", "api_key": wrong}, None):  # in the message; none
        ws = connect(live_server.ws_url)
        try:
            if first_message:
                ws.send(json.dumps(first_message))
            assert wait_closed(ws)[0] == 4401
        finally:
            ws.close()
    wait_until(
        lambda: _failed_auth_events(live_server) >= before + 3,
        timeout=10,
        message="three FAILED_AUTH events",
    )
    assert _failed_auth_events(live_server) == before + 3


def test_an_address_out_of_key_guesses_is_refused_before_the_upgrade(start_live_server):
    server = start_live_server(threads=8, ratelimits={"limits": {"login": "2/minute"}})
    wrong = "pw_000000000000_" + "z" * 43
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        connect(server.ws_url, wrong)  # guess 1: header
    assert refused.value.status_code == 401
    ws = connect(server.ws_url)  # guess 2: message
    try:
        ws.send(json.dumps({"type": "auth", "api_key": wrong}))
        assert wait_closed(ws)[0] == 4401
    finally:
        ws.close()

    # Out of guesses: refused before any key is looked at, the right one too,
    # over the WebSocket and the JSON API alike.
    for key in (wrong, None, server.data.staff_key):
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            connect(server.ws_url, key)
        assert refused.value.status_code == 429
        body = json.loads(refused.value.resp_body)
        assert body["error"]["details"]["action"] == "login"
        assert int(refused.value.resp_headers["retry-after"]) > 0
    response = requests.get(
        f"{server.http_url}/api/v1/tickets", headers={"X-API-Key": server.data.acme_key}, timeout=10
    )
    assert response.status_code == 429


@pytest.mark.parametrize(
    "headers, status",
    [
        ({}, 400),  # not an upgrade at all
        (
            {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"},
            400,
        ),  # no key
        (
            {
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Version": "8",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
            426,
        ),  # old protocol
    ],
)
def test_malformed_upgrades_get_a_json_error_not_a_5xx(live_server, headers, status):
    response = requests.get(f"{live_server.http_url}/ws/monitoring", headers=headers, timeout=10)
    assert response.status_code == status
    assert set(response.json()["error"]) == {"code", "message", "details"}


# ------------------------------------------------------------------ bad clients


def test_garbage_messages_get_errors_and_the_connection_survives(live_server):
    ws = connect(live_server.ws_url, live_server.data.staff_key)
    try:
        _welcome(ws)
        for payload, code in [
            ("not json", "bad_message"),
            ("[1, 2]", "bad_message"),
            ('{"no": "type"}', "bad_message"),
            ('{"type": "subscribe"}', "unknown_type"),
        ]:
            ws.send(payload)
            assert receive_type(ws, "error")["data"]["code"] == code
        ws.send_binary(b"\x00\xff\x10")
        assert receive_type(ws, "error")["data"]["code"] == "bad_message"
        before = receive_type(ws, "snapshot")["seq"]
        assert receive_type(ws, "snapshot")["seq"] == before + 1
    finally:
        ws.close()


def test_endless_garbage_is_closed_with_1008(live_server):
    ws = connect(live_server.ws_url, live_server.data.staff_key)
    try:
        _welcome(ws)
        for _ in range(10):
            ws.send("garbage")
        code, reason = wait_closed(ws)
    finally:
        ws.close()
    assert code == 1008 and "invalid" in reason


def test_an_oversize_message_is_closed_with_1009(live_server):
    ws = connect(live_server.ws_url, live_server.data.staff_key)
    try:
        _welcome(ws)
        ws.send(json.dumps({"type": "get_metrics", "padding": "x" * 10_000}))
        code, _reason = wait_closed(ws)
    finally:
        ws.close()
    assert code == 1009


def _raw_upgrade(live_server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", live_server.port), timeout=10)
    sock.sendall(
        (
            "GET /ws/monitoring HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\nX-API-Key: {live_server.data.staff_key}\r\n"
            "\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(4096)
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


def test_broken_frames_and_mid_message_disconnects_are_survived(live_server):
    # Half a frame (a 4 KB text frame announced, 3 bytes sent), then gone.
    sock = _raw_upgrade(live_server)
    sock.sendall(b"\x81\xfe\x10\x00\x01\x02\x03")
    sock.close()
    # Not a frame at all (reserved bits set, unmasked): closed with a protocol error.
    sock = _raw_upgrade(live_server)
    sock.sendall(b"\xff\x05hello")
    sock.settimeout(10)
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    sock.close()
    assert b"\x88" in received, received[:300]
    close = received[received.index(b"\x88") :]  # the close frame: 1002, protocol error
    assert close[2:4] == b"\x03\xea", received

    # The server carries on for everyone else.
    assert _first_snapshot(live_server, live_server.data.staff_key)[1]["api"]["up"] is True


class Reader:
    """A well-behaved client in a thread, recording the snapshots it receives."""

    def __init__(self, url: str, key: str):
        self.ws = connect(url, key)
        _welcome(self.ws)
        self.seqs: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            message = receive(self.ws)
            if message["type"] == "snapshot":
                self.seqs.append(message["seq"])

    def wait_for_more(self, count: int) -> None:
        start = len(self.seqs)
        wait_until(
            lambda: len(self.seqs) >= start + count, timeout=30, message=f"{count} more snapshots"
        )

    def stop(self) -> list[int]:
        self._stop.set()
        self._thread.join(15)
        self.ws.close()
        return self.seqs


def _stream_ends(ws) -> bool:
    """Read what the server had sent: True when the stream then ends (it was cut off)."""
    ws.sock.settimeout(10)
    try:
        while ws.sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:
        pass
    return True


def _stuck_client(server):
    """Authenticated, small receive window, and never reads after the handshake."""
    return connect(
        server.ws_url, server.data.staff_key, sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)]
    )


def test_a_client_that_stops_reading_is_dropped_by_the_heartbeat(live_server):
    before = live_server.metric("live_feed_disconnects_total", reason="heartbeat")
    reader = Reader(live_server.ws_url, live_server.data.staff_key)
    stuck = _stuck_client(live_server)
    try:
        wait_until(
            lambda: live_server.metric("live_feed_disconnects_total", reason="heartbeat") > before,
            timeout=30,
            message="the stuck client to miss its pongs",
        )
        reader.wait_for_more(2)
        assert _stream_ends(stuck)
    finally:
        seqs = reader.stop()
        stuck.close()
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # it missed nothing


def test_a_client_too_slow_for_the_feed_is_cut_off_while_others_keep_their_cadence(
    start_live_server,
):
    # Heartbeats far apart: only the write deadline and the queue can catch it.
    server = start_live_server(
        ping_interval="60s", send_timeout="1s", queue_size=2, send_buffer=16384
    )
    readers = [Reader(server.ws_url, server.data.staff_key) for _ in range(2)]
    stuck = _stuck_client(server)
    try:
        wait_until(
            lambda: server.metric("live_feed_disconnects_total", reason="slow") == 1,
            timeout=60,
            message="the stuck client to be cut off",
        )
        for reader in readers:
            reader.wait_for_more(2)
        assert _stream_ends(stuck)
    finally:
        all_seqs = [reader.stop() for reader in readers]
        stuck.close()
    for seqs in all_seqs:  # every snapshot, before, during and after
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert server.metric("live_feed_clients") == 0


def test_a_full_process_refuses_more_clients_and_tells_them_when_it_stops(start_live_server):
    server = start_live_server(max_clients=1)
    ws = connect(server.ws_url, server.data.staff_key)
    try:
        _welcome(ws)
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            connect(server.ws_url, server.data.acme_key)
        assert refused.value.status_code == 503
        assert json.loads(refused.value.resp_body)["error"]["code"] == "unavailable"
        receive_type(ws, "snapshot")
        server.process.signal(signal.SIGTERM)  # gunicorn passes it on to its worker
        code, reason = wait_closed(ws)
    finally:
        ws.close()
    assert (code, reason) == (1001, "server shutting down")


def test_a_quick_shutdown_closes_clients_and_ends_the_worker(start_live_server):
    """SIGINT (Ctrl-C) too: clients hear 1001 and the worker ends by itself, not killed later."""
    server = start_live_server()
    worker = server.worker_pid
    ws = connect(server.ws_url, server.data.staff_key)
    try:
        _welcome(ws)
        receive_type(ws, "snapshot")
        server.process.signal(signal.SIGINT)  # the whole group, as a terminal's Ctrl-C
        code, reason = wait_closed(ws)
    finally:
        ws.close()
    server.process.popen.wait(30)
    assert (code, reason) == (1001, "server shutting down"), server.process.log()
    assert server.process.popen.wait(30) == 0
    log = server.process.log()
    assert f"Worker exiting (pid: {worker})" in log
    assert "SIGKILL" not in log, log
