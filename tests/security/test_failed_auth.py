"""Failed API key checks: FAILED_AUTH each, MULTIPLE_FAILED_LOGINS at the threshold."""

from __future__ import annotations

import time

from tests.harness.security import counter, events, key
from ticketing import signals

SECURITY = {"trusted_proxies": ["127.0.0.1"], "failed_auth": {"threshold": 3, "window_seconds": 60}}
NO_LOGIN_LIMIT = {"limits": {"login": "1000/minute"}}


def fail(client, ip: str, raw_key: str):
    r = client.get("/api/v1/echo", headers={"X-API-Key": raw_key, "X-Forwarded-For": ip})
    assert r.status_code == 401
    return r


def test_failures_from_one_ip_escalate_once_per_window(make_app, redis_url, redis_server):
    app = make_app(redis_url=redis_url, security=SECURITY, ratelimits=NO_LOGIN_LIMIT)
    client = app.test_client()
    before = counter("security_events_total", type="MULTIPLE_FAILED_LOGINS", severity="critical")
    fail(client, "203.0.113.5", "pw_000000000001_guess")
    fail(client, "203.0.113.5", "pw_000000000002_guess")
    assert events(app, type="MULTIPLE_FAILED_LOGINS") == []
    fail(client, "203.0.113.5", "pw_000000000003_guess")
    [escalation] = events(app, type="MULTIPLE_FAILED_LOGINS")
    assert escalation.severity == "critical" and escalation.client_ip == "203.0.113.5"
    assert escalation.details["dimensions"] == ["ip"]
    assert escalation.details["failures"] == 3 and escalation.details["threshold"] == 3
    assert (
        counter("security_events_total", type="MULTIPLE_FAILED_LOGINS", severity="critical")
        == before + 1
    )
    # More failures in the same window do not raise it again.
    fail(client, "203.0.113.5", "pw_000000000004_guess")
    fail(client, "203.0.113.5", "pw_000000000005_guess")
    assert [e.count for e in events(app, type="MULTIPLE_FAILED_LOGINS")] == [1]
    [failed] = events(app, type="FAILED_AUTH")
    assert failed.count == 5 and failed.severity == "info" and failed.actor_kind is None
    assert failed.details == {"key_prefix": "000000000005", "reason": "unknown"}
    # The counts are in Redis, shared by all workers.
    stored = {
        k.decode(): int(redis_server.client().get(k))
        for k in redis_server.client().keys("*failed_auth*")
    }
    assert stored["LIMITS:partnerwatch/failed_auth/ip/203.0.113.5"] == 5


def test_failures_on_one_key_prefix_from_many_ips_escalate(make_app, redis_url):
    app = make_app(redis_url=redis_url, security=SECURITY, ratelimits=NO_LOGIN_LIMIT)
    client = app.test_client()
    for ip in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        fail(client, ip, "pw_aaaaaaaaaaaa_wrong-secret")
    [escalation] = events(app, type="MULTIPLE_FAILED_LOGINS")
    assert escalation.details["dimensions"] == ["key_prefix"]
    assert escalation.details["key_prefix"] == "aaaaaaaaaaaa"


def test_workers_add_up_their_failures(make_app, redis_url):
    """Two app instances (two processes) count into the same Redis window."""
    a = make_app(redis_url=redis_url, security=SECURITY, ratelimits=NO_LOGIN_LIMIT)
    b = make_app(redis_url=redis_url, security=SECURITY, ratelimits=NO_LOGIN_LIMIT)
    fail(a.test_client(), "192.0.2.44", "pw_111111111111_x")
    fail(b.test_client(), "192.0.2.44", "pw_222222222222_x")
    fail(a.test_client(), "192.0.2.44", "pw_333333333333_x")
    assert len(events(a, type="MULTIPLE_FAILED_LOGINS")) == 1


def test_the_window_starts_again(make_app, redis_url):
    app = make_app(
        redis_url=redis_url,
        ratelimits=NO_LOGIN_LIMIT,
        security={**SECURITY, "failed_auth": {"threshold": 3, "window_seconds": 1}},
    )
    client = app.test_client()
    fail(client, "192.0.2.9", "pw_111111111111_x")
    fail(client, "192.0.2.9", "pw_222222222222_x")
    time.sleep(1.2)
    fail(client, "192.0.2.9", "pw_333333333333_x")
    assert events(app, type="MULTIPLE_FAILED_LOGINS") == []


def test_without_redis_each_process_still_counts(make_app, redis_factory):
    redis = redis_factory()
    app = make_app(redis_url=redis.url, security=SECURITY, ratelimits=NO_LOGIN_LIMIT)
    redis.kill()
    client = app.test_client()
    before = counter("ratelimit_backend_errors_total")
    for i in range(3):
        fail(client, "192.0.2.77", f"pw_00000000000{i}_x")
    assert len(events(app, type="MULTIPLE_FAILED_LOGINS")) == 1
    assert counter("ratelimit_backend_errors_total") > before


def test_requests_without_any_key_are_recorded_but_not_counted(make_app):
    app = make_app(security=SECURITY)
    with app.test_request_context("/api/v1/echo", environ_base={"REMOTE_ADDR": "192.0.2.5"}):
        for _ in range(5):
            signals.auth_failed.send(app, key_prefix=None, reason="missing")
    [failed] = events(app)
    assert failed.type == "FAILED_AUTH" and failed.count == 5
    assert failed.details == {"key_prefix": None, "reason": "missing"}


def test_a_valid_key_is_not_a_failure(make_app, redis_url):
    app = make_app(redis_url=redis_url, security=SECURITY)
    client = app.test_client()
    for _ in range(5):
        assert client.get("/api/v1/echo", headers=key("partner1")).status_code == 200
    assert events(app) == []
