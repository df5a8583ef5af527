"""Rate limits in a real Redis: per key (or IP) and action, 429s with the right headers."""

from __future__ import annotations

import time

import pytest

from tests.harness.security import assert_limited, counter, events, from_ip, key

LIMITS = {
    "api_call": "5/minute",
    "ticket_create": "3/minute",
    "withdrawal": "2/minute",
    "login": "3/minute",
}


def limited_app(make_app, redis_url, **ratelimits):
    return make_app(
        redis_url=redis_url,
        security={"trusted_proxies": ["127.0.0.1"]},
        ratelimits={"limits": {**LIMITS, **ratelimits.pop("limits", {})}, **ratelimits},
    )


def test_api_calls_are_refused_exactly_past_the_limit(make_app, redis_url, redis_server):
    app = limited_app(make_app, redis_url)
    client = app.test_client()
    before = counter("ratelimit_rejections_total", action="api_call")
    for remaining in (4, 3, 2, 1, 0):
        r = client.get("/api/v1/echo", headers=key("partner1"))
        assert r.status_code == 200
        assert r.headers["X-RateLimit-Limit"] == "5"
        assert r.headers["X-RateLimit-Remaining"] == str(remaining)
        assert int(r.headers["X-RateLimit-Reset"]) > time.time()
        assert "Retry-After" not in r.headers  # only on 429s
    for _ in range(2):
        assert_limited(client.get("/api/v1/echo", headers=key("partner1")), "api_call", 5)
    assert counter("ratelimit_rejections_total", action="api_call") == before + 2

    # Another key has its own budget; the counters are in Redis.
    assert client.get("/api/v1/echo", headers=key("partner2")).status_code == 200
    redis_keys = {k.decode() for k in redis_server.client().keys("*")}
    assert sum("/api_call/5/1/minute" in k for k in redis_keys) == 2, redis_keys
    assert not any("pw_" in k for k in redis_keys)  # keys are stored as digests

    [event] = events(app, type="RATE_LIMIT_EXCEEDED")
    assert (event.actor_kind, event.actor_id) == ("partner", "1")
    assert event.details == {"action": "api_call", "limit": "5 per 1 minute"}
    # A flood of refusals is written at most once a second; the count catches up.
    assert event.count == 1
    time.sleep(1.1)
    assert_limited(client.get("/api/v1/echo", headers=key("partner1")), "api_call", 5)
    assert events(app, type="RATE_LIMIT_EXCEEDED")[0].count == 3


def test_without_a_key_the_client_ip_is_limited(make_app, redis_url):
    app = limited_app(make_app, redis_url)
    client = app.test_client()
    for _ in range(5):
        assert client.get("/api/v1/echo", headers=from_ip("198.51.100.7")).status_code == 401
    assert_limited(client.get("/api/v1/echo", headers=from_ip("198.51.100.7")), "api_call", 5)
    assert client.get("/api/v1/echo", headers=from_ip("198.51.100.8")).status_code == 401
    assert client.get("/healthz").status_code == 200  # outside the API prefix: not limited
    [event] = events(app, type="RATE_LIMIT_EXCEEDED")
    assert event.client_ip == "198.51.100.7" and event.actor_kind is None


def test_ticket_creation_has_its_own_limit(make_app, redis_url):
    app = limited_app(make_app, redis_url, limits={"api_call": "100/minute"})
    client = app.test_client()
    for remaining in (2, 1, 0):
        r = client.post("/api/v1/tickets", headers=key("partner1"))
        assert r.status_code == 201
        # The most specific limit is the one shown.
        assert (r.headers["X-RateLimit-Limit"], r.headers["X-RateLimit-Remaining"]) == (
            "3",
            str(remaining),
        )
    assert_limited(client.post("/api/v1/tickets", headers=key("partner1")), "ticket_create", 3)
    # Other routes are still open and show the api_call budget: 3 creations and this
    # call used it; the refused creation stopped at its own limit and used nothing else.
    r = client.get("/api/v1/echo", headers=key("partner1"))
    assert r.status_code == 200 and r.headers["X-RateLimit-Limit"] == "100"
    assert r.headers["X-RateLimit-Remaining"] == "96"


def test_withdrawal_limit_applies_to_marked_views(make_app, redis_url):
    app = limited_app(make_app, redis_url, limits={"api_call": "100/minute"})
    client = app.test_client()
    before = counter("ratelimit_rejections_total", action="withdrawal")
    assert client.post("/api/v1/withdrawals", headers=key("partner2")).status_code == 201
    assert client.post("/api/v1/withdrawals", headers=key("partner2")).status_code == 201
    assert_limited(client.post("/api/v1/withdrawals", headers=key("partner2")), "withdrawal", 2)
    assert client.post("/api/v1/withdrawals", headers=key("partner1")).status_code == 201
    assert counter("ratelimit_rejections_total", action="withdrawal") == before + 1


def test_failed_key_checks_use_up_the_login_limit(make_app, redis_url):
    app = limited_app(make_app, redis_url, limits={"api_call": "100/minute"})
    client = app.test_client()
    attacker = "203.0.113.50"
    # Valid keys never count against login.
    for _ in range(6):
        assert (
            client.get("/api/v1/echo", headers=from_ip(attacker, key("partner1"))).status_code
            == 200
        )
    for i in range(3):
        r = client.get("/api/v1/echo", headers=from_ip(attacker, {"X-API-Key": f"pw_guess{i}_x"}))
        assert r.status_code == 401
    r = client.get("/api/v1/echo", headers=from_ip(attacker, {"X-API-Key": "pw_guess9_x"}))
    assert_limited(r, "login", 3)
    # Refused before the key is looked at, even a valid key not seen lately...
    assert client.get("/api/v1/echo", headers=from_ip(attacker, key("partner2"))).status_code == 429
    # ...but a key accepted within the last minute is no guess: its partner keeps working.
    assert client.get("/api/v1/echo", headers=from_ip(attacker, key("partner1"))).status_code == 200
    # Other IPs are unaffected.
    assert (
        client.get("/api/v1/echo", headers=from_ip("203.0.113.51", key("partner2"))).status_code
        == 200
    )
    assert len(events(app, type="FAILED_AUTH")) == 1
    assert events(app, type="FAILED_AUTH")[0].count == 3


@pytest.mark.parametrize("strategy", ["fixed-window", "moving-window"])
def test_a_key_accepted_by_any_process_is_no_guess_for_the_others(make_app, redis_url, strategy):
    """Behind one NAT with a guesser, a partner's requests reach a worker that never
    saw its key: the marker the first worker left in Redis lets them through."""
    first, second = (
        limited_app(
            make_app, redis_url, strategy=strategy, limits={"api_call": "100/minute"}
        ).test_client()
        for _ in range(2)
    )
    shared_ip = "203.0.113.70"
    assert first.get("/api/v1/echo", headers=from_ip(shared_ip, key("partner1"))).status_code == 200
    for i in range(3):
        r = second.get("/api/v1/echo", headers=from_ip(shared_ip, {"X-API-Key": f"pw_guess{i}_x"}))
        assert r.status_code == 401
    assert_limited(
        second.get("/api/v1/echo", headers=from_ip(shared_ip, {"X-API-Key": "pw_x_y"})), "login", 3
    )
    # The second process never accepted partner 1's key, yet lets it through ...
    assert (
        second.get("/api/v1/echo", headers=from_ip(shared_ip, key("partner1"))).status_code == 200
    )
    # ... while a key no process accepted lately is refused before it is looked at.
    assert (
        second.get("/api/v1/echo", headers=from_ip(shared_ip, key("partner2"))).status_code == 429
    )


def test_limits_are_shared_by_every_process(make_app, redis_url):
    """Two app instances on one Redis stand for two processes (gunicorn: test_gunicorn.py)."""
    first = limited_app(make_app, redis_url).test_client()
    second = limited_app(make_app, redis_url).test_client()
    for client in (first, second, first, second, first):
        assert client.get("/api/v1/echo", headers=key("staff")).status_code == 200
    assert_limited(second.get("/api/v1/echo", headers=key("staff")), "api_call", 5)


def test_limits_can_be_switched_off(make_app, redis_url):
    app = limited_app(make_app, redis_url, enabled=False)
    client = app.test_client()
    for _ in range(8):
        r = client.get("/api/v1/echo", headers=key("partner1"))
        assert r.status_code == 200 and "X-RateLimit-Limit" not in r.headers


def test_a_guess_sent_to_a_public_route_is_not_remembered(make_app, redis_url):
    app = limited_app(make_app, redis_url, limits={"api_call": "100/minute"})
    client = app.test_client()
    guess = {"X-API-Key": "pw_cafecafecafe_guess", "X-Forwarded-For": "203.0.113.60"}
    # /api/v1/status needs no key; the key is checked anyway before it could be
    # remembered, and that check counts as a failure.
    assert client.get("/api/v1/status", headers=guess).status_code == 200
    for _ in range(2):
        assert client.get("/api/v1/echo", headers=guess).status_code == 401
    assert_limited(client.get("/api/v1/echo", headers=guess), "login", 3)


def test_a_view_marked_with_an_unknown_action_stops_the_app(tmp_path):
    from flask import Flask

    from ticketing.config import ConfigError
    from ticketing.db import db
    from ticketing.security import SecurityMonitor, ratelimit

    app = Flask("marked")
    app.config.update(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'm.db'}")
    db.init_app(app)

    @app.post("/api/v1/refunds")
    @ratelimit("refund")
    def refund():
        return {}

    with pytest.raises(ConfigError, match="ratelimits.limits.refund: no limit configured"):
        SecurityMonitor(app, actor_loader=lambda: None)
    app.config["RATELIMITS"] = {"limits": {"refund": "1/minute"}}
    SecurityMonitor(app, actor_loader=lambda: None)
