"""Throughput cost of the security monitor: scanning and rate limiting, on vs off.

    python -m benchmarks.security_overhead

One small Flask app (an authenticated JSON endpoint that creates a "ticket")
is built five times in the same process: without the monitor; with pattern
scanning only; with rate limiting only, counted in process memory (the
limiter's own work) and in a private Redis; and with both on Redis. The same
request, a ticket of realistic size from the false-positive corpus, is sent
through Flask's test client (no network, so the monitor's share is as large
as it can be), the variants interleaved round by round so drifting machine
load hits them alike; each figure is the best round. Limits are set high
enough never to refuse.

On Redis the limiter's cost is mostly round trips: the benchmark counts them
(Redis' command statistics) and times every storage call in one extra pass.
On a busy machine a round trip inside a request also waits for Redis to be
scheduled, which a tight PING loop (Redis kept awake) hides; both are printed.

Targets, relative to the bare request so that they hold on any machine:
scanning adds at most half of a bare request's time; the limiter's own work
(memory storage) at most 1.5 times; and a ticket creation needs at most 4
Redis round trips (the ticket_create and api_call hits and the two reads for
the X-RateLimit headers; the login check is skipped for keys the process
accepted in the last minute).
"""
from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
import time
from pathlib import Path

from flask import Flask, current_app, g, request

from ticketing import signals
from ticketing.db import db
from ticketing.security import SecurityEvent, SecurityMonitor
from ticketing.security.rate_limits import MonitoredRedisStorage

ROUNDS = 7
REQUESTS = 300
TARGET_SCAN_SHARE = 0.5
TARGET_LIMITER_SHARE = 1.5
TARGET_ROUND_TRIPS = 4
OFF = "off (no monitor)"
SCAN = "scanning only"
LIMIT_MEMORY = "rate limiting only (memory)"
LIMIT_REDIS = "rate limiting only (Redis)"
BOTH = "scanning + rate limiting (Redis)"
CORPUS = Path(__file__).resolve().parent.parent / "tests" / "security" / "corpus" / "tickets.txt"
API_KEY = "pw_aaaaaaaaaaaa_benchmark-key"


class Actor:
    kind, id = "partner", 1


def _actor():
    if "bench_actor" not in g:
        ok = request.headers.get("X-API-Key") == API_KEY
        if not ok:
            signals.auth_failed.send(current_app._get_current_object(), key_prefix=None,
                                     reason="unknown")
        g.bench_actor = Actor() if ok else None
    return g.bench_actor


def build(db_url: str, redis_url: str | None, scan: bool, limit: bool) -> Flask:
    app = Flask(f"bench-{scan}-{limit}")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=db_url,
        SECURITY={"scan": {"enabled": scan}},
        RATELIMITS={"enabled": limit, "storage_url": redis_url or "memory://",
                    "limits": {"api_call": "1000000/minute", "ticket_create": "1000000/minute",
                               "login": "1000000/minute"}},
    )
    db.init_app(app)
    if scan or limit:
        SecurityMonitor(app, actor_loader=_actor)

    @app.post("/api/v1/tickets")
    def create_ticket():
        if _actor() is None:
            return {"error": {"code": "unauthorized", "message": "", "details": {}}}, 401
        body = request.get_json()
        return {"id": 1, "title": body["title"], "length": len(body["description"])}, 201

    with app.app_context():
        SecurityEvent.__table__.create(db.engine, checkfirst=True)
    return app


def ticket() -> dict[str, str]:
    """The longest ordinary ticket of the corpus (a pasted script and its question)."""
    entries = [e.strip("\n") for e in CORPUS.read_text().split("\n---\n")]
    longest = max(entries, key=len)
    title, _, description = longest.partition("\n")
    return {"title": title, "description": description}


def rate(app: Flask, body: dict, n: int = REQUESTS) -> float:
    client = app.test_client()
    headers = {"X-API-Key": API_KEY}
    start = time.perf_counter()
    for _ in range(n):
        response = client.post("/api/v1/tickets", json=body, headers=headers)
        if response.status_code != 201:
            raise RuntimeError(f"unexpected {response.status_code}: {response.get_data(True)}")
    return n / (time.perf_counter() - start)


@contextlib.contextmanager
def _redis_timer():
    """Collect the duration of every rate-limit storage call made meanwhile."""
    storage_class = MonitoredRedisStorage
    original = storage_class._watch
    waits: list[float] = []

    def timed(self, name, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original(self, name, *args, **kwargs)
        finally:
            waits.append(time.perf_counter() - start)

    storage_class._watch = timed
    try:
        yield waits
    finally:
        storage_class._watch = original


def _round_trips(client) -> int:
    """Commands clients sent to Redis (not those its Lua scripts ran, nor INFO itself)."""
    stats = client.info("commandstats")
    return sum(value["calls"] for name, value in stats.items()
               if name not in ("cmdstat_incrby", "cmdstat_expire", "cmdstat_info"))


def main() -> int:
    from tests.harness import start_redis  # a private redis-server on a free port

    logging.disable(logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="security-bench-"))
    redis = start_redis(workdir)
    try:
        db_url = f"sqlite:///{workdir / 'bench.db'}"
        variants = {
            OFF: build(db_url, None, scan=False, limit=False),
            SCAN: build(db_url, None, scan=True, limit=False),
            LIMIT_MEMORY: build(db_url, "memory://", scan=False, limit=True),
            LIMIT_REDIS: build(db_url, redis.url, scan=False, limit=True),
            BOTH: build(db_url, redis.url, scan=True, limit=True),
        }
        body = ticket()
        for app in variants.values():  # warm up
            rate(app, body, 50)
        best = {name: 0.0 for name in variants}
        for _ in range(ROUNDS):
            for name, app in variants.items():
                best[name] = max(best[name], rate(app, body))
        client = redis.client()
        before = _round_trips(client)
        with _redis_timer() as waits:
            rate(variants[LIMIT_REDIS], body, REQUESTS)
        round_trips = (_round_trips(client) - before) / REQUESTS
        redis_ms = sum(waits) / REQUESTS * 1000
        call_ms = sorted(waits)[len(waits) // 2] * 1000
        pings = []
        for _ in range(200):
            start = time.perf_counter()
            client.ping()
            pings.append(time.perf_counter() - start)
        ping_ms = sorted(pings)[len(pings) // 2] * 1000
    finally:
        redis.stop()

    off = best[OFF]
    bare_ms = 1000 / off
    print(f"POST /api/v1/tickets with a {len(body['description'])}-character description, "
          f"Flask test client, best of {ROUNDS} rounds x {REQUESTS} requests")
    for name, value in best.items():
        print(f"  {name:<36} {value:7.0f} req/s  {1000 / value:6.3f} ms/req  "
              f"ratio {value / off:4.2f}  (+{1000 / value - bare_ms:.3f} ms)")
    print(f"  on/off throughput ratio (scanning + rate limiting on Redis): "
          f"{best[BOTH] / off:.2f}")
    print(f"  Redis: {round_trips:.1f} round trips per request, {redis_ms:.3f} ms per request "
          f"spent in them (median call {call_ms:.3f} ms; PING in a tight loop {ping_ms:.3f} ms)")
    scan_share = (1000 / best[SCAN] - bare_ms) / bare_ms
    limiter_share = (1000 / best[LIMIT_MEMORY] - bare_ms) / bare_ms
    verdicts = [
        (scan_share <= TARGET_SCAN_SHARE,
         f"scanning adds {scan_share:.2f}x a bare request's time (target <= {TARGET_SCAN_SHARE})"),
        (limiter_share <= TARGET_LIMITER_SHARE,
         f"the limiter's own work adds {limiter_share:.2f}x a bare request's time "
         f"(target <= {TARGET_LIMITER_SHARE})"),
        (round_trips <= TARGET_ROUND_TRIPS,
         f"rate limiting makes {round_trips:.1f} Redis round trips per request "
         f"(target <= {TARGET_ROUND_TRIPS})"),
    ]
    for ok, text in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}: {text}")
    return 0 if all(ok for ok, _ in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
