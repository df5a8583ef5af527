"""The security monitor under test: its corpus, stored events, counters, keys, requests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from prometheus_client import REGISTRY

from tests.harness.security_app import PARTNER_1, PARTNER_2, STAFF
from ticketing.db import db
from ticketing.security import EventType, SecurityEvent
from ticketing.security.events import SEVERITIES

CORPUS = Path(__file__).resolve().parents[1] / "security" / "corpus"


def load_corpus(name: str) -> list[tuple[str, str]]:
    """(title, description) pairs of ``corpus/<name>``."""
    entries = []
    for block in (CORPUS / name).read_text().split("\n---\n"):
        block = block.strip("\n")
        if block:
            title, _, description = block.partition("\n")
            entries.append((title, description))
    return entries


def events(app, **filters: Any) -> list[SecurityEvent]:
    with app.app_context():
        query = db.select(SecurityEvent).order_by(SecurityEvent.id)
        for name, value in filters.items():
            query = query.where(getattr(SecurityEvent, name) == value)
        rows = list(db.session.execute(query).scalars())
        db.session.expunge_all()
        return rows


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def key(which: str) -> dict[str, str]:
    return {"X-API-Key": {"partner1": PARTNER_1, "partner2": PARTNER_2, "staff": STAFF}[which]}


def send(client, part: str, value: str):
    headers = key("partner1")
    if part == "path":
        return client.get("/api/v1/echo/" + quote(value, safe=""), headers=headers)
    if part == "query":
        return client.get("/api/v1/echo", query_string={"search": value}, headers=headers)
    if part == "form":
        return client.post("/api/v1/echo", data={"comment": value}, headers=headers)
    if part == "json":
        return client.post(
            "/api/v1/echo", json={"ticket": {"notes": ["ok", value]}}, headers=headers
        )
    if part == "header":
        return client.get("/api/v1/echo", headers={**headers, "User-Agent": value})
    raise AssertionError(part)


def from_ip(ip: str, headers: dict | None = None) -> dict:
    return {**(headers or {}), "X-Forwarded-For": ip}


def assert_limited(response, action: str, limit: int) -> None:
    assert response.status_code == 429, response.get_data(True)
    error = response.json["error"]
    assert error["code"] == "rate_limited" and set(error) == {"code", "message", "details"}
    assert error["details"]["action"] == action
    assert error["details"]["limit"] == f"{limit} per 1 minute"
    assert response.headers["X-RateLimit-Limit"] == str(limit)
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert time.time() < int(response.headers["X-RateLimit-Reset"]) <= time.time() + 61


DEFAULT_ACTIONS = ("login", "withdrawal", "api_call", "ticket_create")


def expected_series(actions=DEFAULT_ACTIONS) -> set[tuple[str, tuple]]:
    series = {
        ("security_events_total", (("severity", s), ("type", t.value)))
        for t in EventType
        for s in SEVERITIES
    }
    series |= {("ratelimit_rejections_total", (("action", a),)) for a in actions}
    series.add(("ratelimit_backend_errors_total", ()))
    return series
