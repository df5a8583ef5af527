"""How limits are counted: every strategy, several rates, the counter keys, Redis away.

test_ratelimit.py covers what clients see with the default fixed window; this
file covers the counting underneath: the other strategies (checked limit by
limit), an action with several rates, the counter keys, and the storage a
process counts in while Redis is away. test_hot_path.py counts round trips.
"""

from __future__ import annotations

import pytest
from limits import parse_many

from tests.harness import start_redis, wait_until
from tests.harness.security import assert_limited, from_ip, key
from ticketing.security.counters import Check, Limiter

HIGH = "1000/minute"


@pytest.mark.parametrize("strategy", ["moving-window", "sliding-window-counter"])
def test_other_strategies_refuse_exactly_past_the_limit(make_app, redis_url, strategy):
    app = make_app(
        redis_url=redis_url,
        security={"trusted_proxies": ["127.0.0.1"]},
        ratelimits={
            "strategy": strategy,
            "limits": {"api_call": "6/minute", "ticket_create": "2/minute"},
        },
    )
    client = app.test_client()
    headers = from_ip("198.51.100.30", key("partner1"))
    for remaining in (1, 0):
        r = client.post("/api/v1/tickets", headers=headers)
        assert r.status_code == 201
        assert (r.headers["X-RateLimit-Limit"], r.headers["X-RateLimit-Remaining"]) == (
            "2",
            str(remaining),
        )
    assert_limited(client.post("/api/v1/tickets", headers=headers), "ticket_create", 2)
    # The refused creation stopped at its own limit: api_call has 6 - 2 - 1 left after this.
    r = client.get("/api/v1/echo", headers=headers)
    assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == "3"
    for _ in range(3):
        assert client.get("/api/v1/echo", headers=headers).status_code == 200
    assert_limited(client.get("/api/v1/echo", headers=headers), "api_call", 6)


@pytest.mark.parametrize("storage", ["redis", "memory"])
def test_an_action_with_several_rates_is_held_to_each(make_app, redis_url, storage):
    app = make_app(
        redis_url=redis_url if storage == "redis" else None,
        security={"trusted_proxies": ["127.0.0.1"]},
        ratelimits={"limits": {"api_call": HIGH, "ticket_create": "3/minute;5/hour"}},
    )
    client = app.test_client()
    headers = from_ip(f"198.51.100.{31 if storage == 'redis' else 32}", key("staff"))
    statuses = [client.post("/api/v1/tickets", headers=headers).status_code for _ in range(4)]
    assert statuses == [201, 201, 201, 429]
    body = client.post("/api/v1/tickets", headers=headers).json["error"]
    assert body["details"]["action"] == "ticket_create"
    assert body["details"]["limit"] in ("3 per 1 minute", "5 per 1 hour")


def test_counters_are_the_keys_limits_itself_uses(make_app):
    """The keys are built once per rate; they must stay those of ``limits``' key_for."""
    app = make_app(ratelimits={"limits": {"ticket_create": "2/second;5/hour"}})
    state = app.extensions["security_monitor"]
    with app.test_request_context(
        "/api/v1/tickets",
        method="POST",
        headers=key("partner1"),
        environ_base={"REMOTE_ADDR": "192.0.2.8"},
    ):
        checks = state.rate_plan.checks(state)
    assert [c.action for c in checks] == ["ticket_create", "ticket_create", "api_call", "login"]
    for check in checks:
        assert check.known_key == check.item.key_for(*check.identifiers)
    assert checks[-1].key == "LIMITER/partnerwatch/ip:192.0.2.8/login/5/1/minute"


def test_requests_to_unknown_api_paths_count_as_api_calls(make_app, redis_url):
    """A client probing for endpoints is throttled like any other (404s included)."""
    app = make_app(
        redis_url=redis_url,
        security={"trusted_proxies": ["127.0.0.1"]},
        ratelimits={"limits": {"api_call": "3/minute"}},
    )
    client = app.test_client()
    headers = from_ip("198.51.100.33", key("partner2"))
    statuses = [client.get(f"/api/v1/nothing-{i}", headers=headers).status_code for i in range(4)]
    assert statuses == [404, 404, 404, 429]


def test_the_limiter_counts_in_memory_while_redis_is_away_and_returns(tmp_path):
    redis = start_redis(tmp_path)
    try:
        limiter = Limiter(redis.url, "fixed-window", timeout=0.2)
        [item] = parse_many("3/minute")
        check = Check("api_call", item, ("test", "key:abc", "api_call"))
        assert [limiter.evaluate([check])[-1].allowed for _ in range(4)] == [
            True,
            True,
            True,
            False,
        ]
        redis.kill()
        # Away: a fresh count in this process, the same limit.
        assert [limiter.evaluate([check])[-1].allowed for _ in range(4)] == [
            True,
            True,
            True,
            False,
        ]
        assert limiter.counting_in_memory
        redis.start()
        results = []

        def back_on_redis() -> bool:  # Redis is probed again a second after it failed
            results.append(limiter.evaluate([check])[-1])
            return not limiter.counting_in_memory

        wait_until(back_on_redis, timeout=10, interval=0.2, message="limiter back on Redis")
        assert results[-1].allowed and results[-1].remaining == 2  # Redis is empty again
        stored = redis.client().get("LIMITS:LIMITER/test/key:abc/api_call/3/1/minute")
        assert int(stored) == 1
    finally:
        redis.stop()


def test_a_callers_check_command_is_packed_once_and_counts_each_caller_apart(
    redis_url, redis_server
):
    limiter = Limiter(redis_url, "fixed-window")
    redis_client = redis_server.client()
    [item] = parse_many("3/minute")
    [login] = parse_many("5/minute")

    def checks(who: str) -> list[Check]:
        return [
            Check("api_call", item, ("test", who, "api_call")),
            Check(
                "login",
                login,
                ("test", "ip:10.0.0.1", "login"),
                hit=False,
                unless=f"test/known_key/{who}",
            ),
        ]

    first = [limiter.evaluate(checks("key:a"))[0] for _ in range(4)]
    assert [r.allowed for r in first] == [True, True, True, False]
    assert [r.remaining for r in first] == [2, 1, 0, 0]
    assert len(limiter.storage._packed) == 1  # the same caller: packed once, sent four times
    other = limiter.evaluate(checks("key:b"))
    assert other[0].allowed and other[0].remaining == 2  # a caller of its own counts apart
    assert len(limiter.storage._packed) == 2
    # The marker named in the packed command is still looked up on each request.
    # Renewing it costs no round trip of its own: it goes with the next check.
    limiter.mark("test/known_key/key:b", 60, later=True)
    marker = "LIMITS:test/known_key/key:b"
    assert redis_client.get(marker) is None
    assert limiter.evaluate(checks("key:b"))[1].remaining is None  # skipped: its key is known
    assert 0 < redis_client.ttl(marker) <= 60
    assert len(limiter.storage._packed) == 2  # a command carrying a marker is not kept
    limiter.unmark("test/known_key/key:b")
    assert redis_client.get(marker) is None
    assert limiter.evaluate(checks("key:b"))[1].remaining == 5  # looked at again
    # A restarted Redis has lost the script: the packed command loads it again.
    limiter.storage._call("SCRIPT", "FLUSH")
    assert limiter.evaluate(checks("key:b"))[0].remaining == 0
