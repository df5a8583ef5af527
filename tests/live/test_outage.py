"""Prometheus stopped mid-run: the feed keeps going, says what is missing, and recovers."""

from __future__ import annotations

import json

from tests.harness.ws_clients import connect, receive, receive_type


def _prometheus_ok(message: dict) -> bool:
    return message["type"] == "snapshot" and message["data"]["sources"]["prometheus"]["ok"]


def test_prometheus_stopped_mid_run_is_reported_and_recovery_is_seen(
    start_live_server, private_prometheus
):
    server = start_live_server(prometheus_url=private_prometheus.url)
    staff = connect(server.ws_url, server.data.staff_key)
    partner = connect(server.ws_url, server.data.acme_key)
    try:
        assert receive(staff)["type"] == "welcome"
        assert receive(partner)["type"] == "welcome"
        snapshots = [receive_type(staff, "snapshot", predicate=_prometheus_ok, timeout=30)]

        private_prometheus.stop()
        while _prometheus_ok(snapshots[-1]):
            snapshots.append(receive_type(staff, "snapshot", timeout=10))
        down = snapshots[-1]["data"]
        # Which part is missing, and why (staff see the error) ...
        assert down["sources"]["prometheus"]["ok"] is False
        assert "Connection" in down["sources"]["prometheus"]["error"]
        assert down["sources"]["alertmanager"] == {"ok": True}
        assert down["sources"]["database"] == {"ok": True}
        # ... its numbers are unknown, not zero ...
        assert down["api"] == {"up": None, "targets": None}
        assert down["energy_pools"] is None
        assert down["transactions"] == {"rate_per_second": None, "failure_ratio": None}
        assert down["tickets"]["open_by_priority"] is None
        # ... and the other sources still show.
        assert down["alerts"]["firing"] > 0

        # A partner is told the part is unavailable, without internal details.
        partner.send(json.dumps({"type": "get_metrics"}))
        view = receive_type(partner, "metrics")["data"]
        assert view["sources"]["prometheus"] == {"ok": False, "error": "unavailable"}
        assert view["tickets"]["open_by_priority"] == server.data.open_tickets[server.data.acme_id]

        # The feed did not go silent while Prometheus was away.
        for _ in range(2):
            snapshots.append(receive_type(staff, "snapshot", timeout=10))
            assert snapshots[-1]["data"]["sources"]["prometheus"]["ok"] is False

        # Back: answering first, then (once it has scraped again) with numbers.
        private_prometheus.start()
        while not (
            _prometheus_ok(snapshots[-1])
            and snapshots[-1]["data"]["api"]["up"] is not None
            and snapshots[-1]["data"]["energy_pools"]
        ):
            snapshots.append(receive_type(staff, "snapshot", timeout=30))
        back = snapshots[-1]["data"]
        assert back["energy_pools"]["main"] == {"available_ratio": 0.25}
        assert back["api"]["up"] is True
        assert back["sources"]["prometheus"].get("error") is None

        seqs = [s["seq"] for s in snapshots]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    finally:
        staff.close()
        partner.close()
