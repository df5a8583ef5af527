"""Partner webhooks: settings that let the loopback sink through, registration, delivery."""

from __future__ import annotations

import hashlib
import hmac
import time

from flask import Flask

from tests.harness.outbox import deliver

TOKEN = "receiver-token-0123456789abcdef"


FAST_WEBHOOKS = {
    "require_https": False,
    "allowed_networks": ["127.0.0.1/32"],
    "initial_backoff": "100ms",
    "max_backoff": "200ms",
    "connect_timeout": "1s",
    "read_timeout": "2s",
}


def register(app: Flask, key: str, url: str, **fields) -> dict:
    response = app.test_client().post(
        "/api/v1/webhooks", json={"url": url, **fields}, headers={"X-API-Key": key}
    )
    assert response.status_code == 201, response.json
    return response.json


def deliver_until(app: Flask, sink, count: int, path: str | None = None, timeout: float = 15):
    """Run delivery passes until ``sink`` got ``count`` requests (retries wait their backoff)."""
    import time

    deadline = time.monotonic() + timeout
    while len(sink.received(path)) < count:
        assert time.monotonic() < deadline, f"{len(sink.received(path))} of {count} requests"
        deliver(app)
        time.sleep(0.05)
    return sink.received(path)


def partner_verifies(secret: str, headers: dict, body: bytes, tolerance: int = 300) -> bool:
    """What docs/webhooks.md tells a partner to do, written independently of ticketing's code."""
    header = headers["Partnerwatch-Signature"]
    fields = dict(part.split("=", 1) for part in header.split(","))
    timestamp = int(fields["t"])
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])
