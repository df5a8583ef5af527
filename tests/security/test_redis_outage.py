"""Redis killed mid-run and started again: service goes on, limits hold per process, recovery.

In one process (this test's app), so the per-process fallback is exact and the
error counter can be read; test_gunicorn.py does the same under gunicorn.
"""

from __future__ import annotations

import logging

from tests.harness import wait_until
from tests.harness.security import counter, key


def test_redis_outage_falls_back_to_process_limits_and_recovers(make_app, redis_factory, caplog):
    caplog.set_level(logging.WARNING, logger="ticketing.security.rate_limits")
    redis = redis_factory()
    app = make_app(
        redis_url=redis.url,
        security={"trusted_proxies": ["127.0.0.1"]},
        ratelimits={"limits": {"api_call": "5/minute", "login": "1000/minute"}},
    )
    client = app.test_client()

    def statuses(headers, n):
        return [client.get("/api/v1/echo", headers=headers).status_code for _ in range(n)]

    # Redis up: shared limits.
    assert statuses(key("partner1"), 6) == [200] * 5 + [429]
    assert redis.client().keys("*api_call*")

    # Redis down: no 5xx, the same limits counted in this process, errors counted.
    redis.kill()
    errors = counter("ratelimit_backend_errors_total")
    assert statuses(key("partner2"), 7) == [200] * 5 + [429, 429]
    assert statuses(key("partner1"), 6) == [200] * 5 + [429]  # a fresh count in memory
    assert counter("ratelimit_backend_errors_total") > errors
    assert "rate-limit storage unreachable" in caplog.text

    # Redis back (empty, as after a crash): the limiter returns to it by itself.
    redis.start()

    def back_on_redis():
        client.get("/api/v1/echo", headers=key("staff"))
        return redis.client().keys("*api_call*")

    wait_until(back_on_redis, timeout=60, interval=0.25, message="limits back in Redis")
    assert "rate-limit storage answers again" in caplog.text
    anonymous = {"X-Forwarded-For": "198.51.100.99"}
    assert statuses(anonymous, 6) == [401] * 5 + [429]
    [stored] = redis.client().keys("*ip:198.51.100.99/api_call*")
    assert int(redis.client().get(stored)) == 6
