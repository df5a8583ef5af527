"""Failed API key checks: FAILED_AUTH for each, MULTIPLE_FAILED_LOGINS for a run of them.

Every failed check (``ticketing.signals.auth_failed``) is recorded as a
FAILED_AUTH event and counted twice: per client IP and per key prefix (the
non-secret part of the presented key, when it has one). When either count
reaches ``security.failed_auth.threshold`` within ``window_seconds`` (the
window starts at the first failure), a MULTIPLE_FAILED_LOGINS event is
recorded, which the security team is alerted about. It is raised once per
window and dimension: the count has to reach the threshold again in a new
window to raise it again.

A request that carries no key at all (``reason="missing"``) is recorded but
not counted: it guesses nothing, and crawlers send plenty of them (the
``api_call`` limit per IP throttles those).

Counts live in Redis (through the rate limiter's storage) so that all workers
add up; when Redis is unreachable each process counts for itself.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from flask import has_request_context

from ticketing.security.events import EventType, record_event
from ticketing.security.rate_limits import FailureCounter

#: Failure reasons that are not a guess at a key (recorded, not counted).
NOT_COUNTED = frozenset({"missing"})

_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _key_part(value: str) -> str:
    """Attacker-chosen text made safe and short for a storage key."""
    if _SAFE.match(value):
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:32]


class FailedAuthTracker:
    def __init__(self, counter: FailureCounter, threshold: int, window_seconds: int) -> None:
        self.counter = counter
        self.threshold = threshold
        self.window_seconds = window_seconds

    def failed(
        self, key_prefix: str | None = None, reason: str | None = None, client_ip: str | None = None
    ) -> list[str]:
        """Record one failed check; returns the dimensions that just crossed the threshold."""
        if client_ip is None and has_request_context():
            from ticketing.security import request_state

            client_ip = request_state().client_ip()
        details = {"key_prefix": key_prefix, "reason": reason}
        # Outside a request: the client's address given, no method or path.
        extra: dict[str, Any] = (
            {} if has_request_context() else {"client_ip": client_ip, "method": None, "path": None}
        )
        record_event(EventType.FAILED_AUTH, actor=None, details=details, **extra)
        if reason in NOT_COUNTED:
            return []

        crossed: dict[str, int] = {}
        if client_ip:
            count = self.counter.add(f"ip/{_key_part(client_ip)}")
            if count == self.threshold:
                crossed["ip"] = count
        if key_prefix:
            count = self.counter.add(f"key/{_key_part(key_prefix)}")
            if count == self.threshold:
                crossed["key_prefix"] = count
        if crossed:
            record_event(
                EventType.MULTIPLE_FAILED_LOGINS,
                actor=None,
                details={
                    "dimensions": sorted(crossed),
                    "failures": max(crossed.values()),
                    "threshold": self.threshold,
                    "window_seconds": self.window_seconds,
                    "key_prefix": key_prefix,
                    "last_reason": reason,
                },
                **extra,
            )
        return sorted(crossed)
