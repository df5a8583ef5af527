"""Under real gunicorn with 3 workers: limits shared through Redis, and a Redis outage.

The workers run in prometheus_client's multiprocess mode (as the ticket
service does under gunicorn), so the test also reads their counters: every
series at 0 before the first request, then the rejections and storage errors.
"""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from tests.harness import free_port, http_ready, wait_until
from tests.harness.security import expected_series
from tests.harness.security_app import PARTNER_1, PARTNER_2, build_app
from ticketing.db import db

LIMIT = 10


@pytest.fixture
def serve(processes, root, tmp_path):
    def start(redis_url: str) -> str:
        port = free_port()
        config = {
            "security": {"trusted_proxies": ["127.0.0.1"]},
            "ratelimits": {"limits": {"api_call": f"{LIMIT}/minute", "login": "1000/minute"}},
        }
        metrics_dir = tmp_path / "metrics"
        metrics_dir.mkdir()
        db_url = f"sqlite:///{tmp_path / 'gunicorn.db'}"
        # The table exists before the workers start, as after a deployment's
        # migration: three workers creating it at once would race.
        prepared = build_app(db_url, monitor=False)
        with prepared.app_context():
            db.engine.dispose()
        env = {
            "SECURITY_TEST_DB": db_url,
            "REDIS_URL": redis_url,
            "SECURITY_TEST_CONFIG": json.dumps(config),
            "PYTHONPATH": str(root),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }
        processes.start(
            [
                processes.python,
                "-m",
                "gunicorn",
                "--workers",
                "3",
                "--no-control-socket",
                "--bind",
                f"127.0.0.1:{port}",
                "--chdir",
                str(root),
                "--log-level",
                "warning",
                "--graceful-timeout",
                "2",
                "tests.harness.security_app:create()",
            ],
            tmp_path,
            ready=http_ready(f"http://127.0.0.1:{port}/healthz"),
            name="gunicorn",
            env=env,
            timeout=60,
        )
        url = f"http://127.0.0.1:{port}"
        pids: set[str] = set()

        def all_workers_up():
            with ThreadPoolExecutor(6) as pool:
                got = pool.map(
                    lambda _: requests.get(f"{url}/healthz?sleep=0.2", timeout=10), range(6)
                )
                pids.update(r.headers["X-Worker-Pid"] for r in got)
            return len(pids) == 3

        wait_until(all_workers_up, timeout=60, message="3 gunicorn workers answering")
        return url

    return start


def counters(tmp_path) -> dict[tuple[str, tuple], float]:
    """The workers' counters, summed as the ticket service's /metrics would sum them."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path / "metrics"))
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def burst(url: str, headers: dict, n: int) -> list[requests.Response]:
    """``n`` requests, 6 at a time, each on its own connection (so workers share them)."""

    def one(_):
        return requests.get(f"{url}/api/v1/echo?sleep=0.05", headers=headers, timeout=10)

    with ThreadPoolExecutor(6) as pool:
        return list(pool.map(one, range(n)))


def test_three_workers_share_limits_and_survive_a_redis_outage(serve, redis_factory, tmp_path):
    """One gunicorn (booting it is the slow part) for the three phases."""
    redis = redis_factory()
    url = serve(redis.url)

    # 0. Every worker set its counters up at 0: the first event will show in increase().
    at_start = counters(tmp_path)
    assert expected_series() <= set(at_start)
    assert {at_start[series] for series in expected_series()} == {0.0}

    # 1. Redis up: the limit is exact across workers.
    responses = burst(url, {"X-API-Key": PARTNER_1}, LIMIT + 6)
    assert Counter(r.status_code for r in responses) == {200: LIMIT, 429: 6}
    assert len({r.headers["X-Worker-Pid"] for r in responses}) >= 2
    for r in responses:
        assert r.headers["X-RateLimit-Limit"] == str(LIMIT)
        # Remaining is read after the hit, so concurrent requests may see later counts.
        assert 0 <= int(r.headers["X-RateLimit-Remaining"]) < LIMIT
        if r.status_code == 429:
            assert r.headers["X-RateLimit-Remaining"] == "0"
            assert 0 < int(r.headers["Retry-After"]) <= 60
            assert r.json()["error"]["code"] == "rate_limited"

    # 2. Redis killed: never a 5xx; each worker keeps its own count of the same
    # limit, so at least LIMIT and at most 3 x LIMIT pass.
    redis.kill()
    responses = burst(url, {"X-API-Key": PARTNER_2}, 4 * LIMIT)
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 429}, statuses
    assert LIMIT <= statuses[200] <= 3 * LIMIT and statuses[429] >= LIMIT

    # 3. Redis back: every worker returns to it by itself, limits are shared again.
    redis.start()
    batch = 0

    def shared_again():
        """A batch for a fresh client IP is limited exactly, all of it counted in Redis."""
        nonlocal batch
        batch += 1
        ip = f"198.51.100.{batch}"
        got = burst(url, {"X-Forwarded-For": ip}, LIMIT + 3)
        assert all(r.status_code in (401, 429) for r in got)
        stored = redis.client().get(
            f"LIMITS:LIMITER/partnerwatch/ip:{ip}/api_call/{LIMIT}/1/minute"
        )
        return (
            Counter(r.status_code for r in got) == {401: LIMIT, 429: 3}
            and stored is not None
            and int(stored) == LIMIT + 3
        )

    wait_until(shared_again, timeout=90, interval=0.5, message="workers back on Redis")

    at_end = counters(tmp_path)
    assert at_end[("ratelimit_rejections_total", (("action", "api_call"),))] >= 6 + LIMIT + 3
    assert at_end[("ratelimit_backend_errors_total", ())] > 0
    assert (
        at_end[
            ("security_events_total", (("severity", "warning"), ("type", "RATE_LIMIT_EXCEEDED")))
        ]
        >= 6 + LIMIT
    )
