"""What a clean request costs the monitor: no database query, one Redis round trip.

Security events are written only when something happens; an ordinary request
is scanned in memory and counted against all its limits with one Lua script.
"""

from __future__ import annotations

import contextlib
import time

from redis.connection import Connection
from sqlalchemy import event

from tests.harness.security import from_ip, key, load_corpus
from ticketing.db import db

HIGH = "1000/minute"


@contextlib.contextmanager
def redis_commands():
    """Count what the Redis client sends meanwhile (a command or a pipeline: a round trip)."""
    original = Connection.send_packed_command
    sent: list[bytes] = []

    def counted(self, command, *args, **kwargs):
        sent.append(command if isinstance(command, bytes) else b"".join(command))
        return original(self, command, *args, **kwargs)

    Connection.send_packed_command = counted
    try:
        yield sent
    finally:
        Connection.send_packed_command = original


def test_a_ticket_creation_costs_one_redis_round_trip(make_app, redis_url):
    app = make_app(
        redis_url=redis_url,
        security={"trusted_proxies": ["127.0.0.1"]},
        ratelimits={"limits": {"api_call": HIGH, "ticket_create": HIGH, "login": HIGH}},
    )
    client = app.test_client()
    headers = from_ip("198.51.100.20", key("partner1"))
    client.post("/api/v1/tickets", headers=headers)  # loads the script into Redis
    # A key not accepted yet: ticket_create, api_call and the login check together,
    # then, once accepted, the key is marked for the other processes (once per
    # key and process every half minute).
    with redis_commands() as sent:
        r = client.post("/api/v1/tickets", headers=from_ip("198.51.100.21", key("partner2")))
    assert r.status_code == 201 and len(sent) == 2, sent
    assert sent[0].count(b"EVALSHA") == 1 and b"known_key" in sent[1]
    # A key accepted a moment ago: the login check is skipped; still one round trip.
    with redis_commands() as sent:
        for _ in range(5):
            r = client.post("/api/v1/tickets", headers=headers)
            assert r.status_code == 201 and r.headers["X-RateLimit-Remaining"]
    assert len(sent) == 5, sent
    # Half a minute on, the key's marker is renewed inside the next request's
    # script: still one round trip each.
    known = app.extensions["security_monitor"].known_keys
    for digest in known._seen:
        known._seen[digest] = time.monotonic() + 1
    with redis_commands() as sent:
        for _ in range(2):
            assert client.post("/api/v1/tickets", headers=headers).status_code == 201
    assert len(sent) == 2 and b"known_key" not in sent[0] and b"known_key" in sent[1], sent
    assert sent[1].count(b"EVALSHA") == 1
    # A failed key check costs more (not the hot path): the failure counts per IP
    # and per key prefix, the login deduction, and the key's marker removed.
    guess = {"X-API-Key": "pw_0123456789ab_guess"}
    client.get("/api/v1/echo", headers=from_ip("198.51.100.22", guess))
    with redis_commands() as sent:
        r = client.get("/api/v1/echo", headers=from_ip("198.51.100.23", guess))
    assert r.status_code == 401 and len(sent) == 5, sent


def test_a_clean_request_queries_no_database(make_app, redis_url):
    app = make_app(
        redis_url=redis_url, ratelimits={"limits": {"api_call": HIGH, "ticket_create": HIGH}}
    )
    client = app.test_client()
    title, description = load_corpus("tickets.txt")[5]
    statements: list[str] = []
    with app.app_context():
        engine = db.engine

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(3):
            r = client.post(
                "/api/v1/echo",
                json={"title": title, "description": description},
                headers=key("partner1"),
            )
            assert r.status_code == 200 and r.headers["X-RateLimit-Limit"] == "1000"
        assert statements == []
        # An attack pattern is a security event: that one is written.
        client.post(
            "/api/v1/echo", json={"q": "<script>alert(1)</script>"}, headers=key("partner1")
        )
        assert any("security_events" in s for s in statements)
    finally:
        event.remove(engine, "before_cursor_execute", count)
