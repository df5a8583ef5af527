"""Signing partner webhook deliveries: HMAC-SHA256 over the timestamp and the body.

Each delivery carries

    Partnerwatch-Signature: t=1700000000,v1=5257a869e7ecebeda32affa62cdca3fa...

where ``v1`` is the hex HMAC-SHA256 (64 hex digits), keyed with the endpoint's secret, of
``"<t>.<raw body>"``.  A partner recomputes it over the raw bytes it received,
compares in constant time and refuses timestamps older than a few minutes
(replays); docs/webhooks.md has the snippet.  :func:`verify` is that check.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

HEADER = "Partnerwatch-Signature"
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(int(timestamp)).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(
    secret: str, header: str, body: bytes, tolerance: float = 300, now: float | None = None
) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` within ``tolerance`` seconds."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(
        hmac.compare_digest(expected, value)
        for key, value in (item.split("=", 1) for item in header.split(","))
        if key == "v1"
    )
