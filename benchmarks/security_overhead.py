"""Throughput cost of the security monitor: scanning and rate limiting, on vs off.

    python -m benchmarks.security_overhead

1. Real HTTP under gunicorn, with the ticket service's settings
   (``ticketing/runtime/gunicorn.conf.py``; 2 workers x 8 threads, gthread). Two apps,
   each served four ways: scanning and rate limiting off, scanning only, rate
   limiting only (Redis) and both:

   - the ticket service itself on a private PostgreSQL database (``off`` is
     ``security.scan.enabled: false`` and ``ratelimits.enabled: false``; the
     outbox delivery thread and the live feed are off in all four);
   - a small app: an authenticated JSON endpoint that parses the body and
     answers 201, without database (``off``: no monitor at all). Next to it the
     monitor's share is as large as it can be.

   A load generator in this process (16 kept-alive connections, the minimal
   HTTP client of ``benchmarks/_support.py``) creates tickets (``POST
   /api/v1/tickets``) with the ordinary support texts of
   ``tests/security/corpus/tickets.txt``, each made unique with a reference
   number so that no request is cheaper than a real one. The eight servers
   take turns for several rounds, so drifting machine load hits them alike;
   limits are set high enough never to refuse. Besides throughput, the CPU
   time the workers and Redis spent per request is read from /proc: on a
   machine shared with other work it is the steadier figure.
2. The small app in this process, through Flask's test client: what each
   part of the monitor adds to a request, in microseconds, and how many Redis
   round trips rate limiting makes (commands sent, counted at the Redis client).

Targets: scanning plus rate limiting cost the ticket service under 15 % of its
ticket-creation throughput, and rate limiting makes one Redis round trip per
ticket creation (its two limits, ``ticket_create`` and ``api_call``, and the
figures of the X-RateLimit-* headers come from one Lua script). A ticket
creation is CPU-bound here (PostgreSQL runs without fsync), so the cost is
the monitor's share of its CPU: what scanning and rate limiting add per request
on the small app (workers and Redis), over what the ticket service spends per
ticket with them off. The direct on/off comparison of the ticket service's
servers is printed too; on a machine shared with other work its rounds drift
by more than the monitor costs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import yaml
from flask import Flask, current_app, g, request

from ticketing import signals
from ticketing.db import db
from ticketing.security import SecurityEvent, SecurityMonitor

from ._support import (
    ROOT,
    ProcessGroup,
    build_request,
    cpu_seconds,
    http_ready,
    python_env,
    run_load,
    say,
    table,
    ticketing_database,
    tree_cpu_seconds,
    verdict,
    workdir,
)

WORKERS, THREADS = 2, 8
CONCURRENCY = 16
ROUNDS = 4
DURATION = 2.5  # seconds per server per round
WARMUP = 1.0  # seconds per server before the rounds, not counted
CLIENT_ROUNDS = 5
CLIENT_REQUESTS = 300
TARGET_COST = 0.15
TARGET_ROUND_TRIPS = 1
HIGH = "1000000000/minute"  # never reached: limits are counted, not enforced
GUNICORN_CONF = ROOT / "ticketing" / "runtime" / "gunicorn.conf.py"
CORPUS = ROOT / "tests" / "security" / "corpus" / "tickets.txt"
BENCH_KEY = "pw_aaaaaaaaaaaa_benchmark-key"  # the small app's only key
OFF = "off"
SCAN = "scanning only"
LIMIT = "rate limiting only (Redis)"
LIMIT_MEMORY = "rate limiting only (memory)"
BOTH = "scanning + rate limiting (Redis)"
#: name -> (scan, limit)
CONFIGS = {OFF: (False, False), SCAN: (True, False), LIMIT: (False, True), BOTH: (True, True)}
SERVICE = "the ticket service"
SMALL = "the small app"


def texts() -> list[tuple[str, str]]:
    entries = [e.strip("\n") for e in CORPUS.read_text().split("\n---\n") if e.strip()]
    return [
        (title, description)
        for title, _, description in (entry.partition("\n") for entry in entries)
    ]


def ticket(corpus: list[tuple[str, str]], n: int) -> dict[str, str]:
    """The n-th ticket: a corpus text with a reference number (every request differs)."""
    title, description = corpus[n % len(corpus)]
    return {"title": f"{title} (ref {n})", "description": f"{description}\n\nOur reference: {n}."}


# ------------------------------------------------- the ticket service, under gunicorn


def prepare_database(url: str) -> str:
    """Migrate the ticketing schema and issue a partner key; returns the key."""
    with ticketing_database(url) as (_, key):
        return key


def ticketing_config(path: Path, scan: bool, limit: bool, redis_url: str) -> Path:
    section = {
        "outbox": {"worker": False},
        "live": {"enabled": False},
        "security": {"scan": {"enabled": scan}},
        "ratelimits": (
            {
                "enabled": True,
                "storage_url": redis_url,
                "limits": {"api_call": HIGH, "ticket_create": HIGH},
            }
            if limit
            else {"enabled": False}
        ),
    }
    path.write_text(yaml.safe_dump(section, sort_keys=False))
    return path


def start_servers(
    tmp: Path, procs: ProcessGroup, db_url: str, redis_url: str
) -> dict[tuple[str, str], tuple[int, int]]:
    """(app, configuration) -> (port, gunicorn master pid)."""
    from tests.harness import free_port

    servers = {}
    for app in (SERVICE, SMALL):
        for n, (name, (scan, limit)) in enumerate(CONFIGS.items()):
            port = free_port()
            tag = f"{'service' if app == SERVICE else 'small'}{n}"
            metrics_dir = tmp / f"metrics-{tag}"
            metrics_dir.mkdir()
            env = python_env(
                TICKETING_BIND=f"127.0.0.1:{port}",
                TICKETING_WORKERS=str(WORKERS),
                TICKETING_THREADS=str(THREADS),
                PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
                REDIS_URL=redis_url,
            )
            if app == SERVICE:
                env.update(
                    TICKETING_DATABASE_URL=db_url,
                    TICKETING_CONFIG=str(
                        ticketing_config(tmp / f"{tag}.yml", scan, limit, redis_url)
                    ),
                )
                wsgi = "ticketing:create_app()"
            else:
                small_db = f"sqlite:///{tmp / f'{tag}.db'}"
                build(small_db, None, scan=False, limit=False)  # its table, before the workers
                env.update(
                    BENCH_DB=small_db, BENCH_SCAN=str(int(scan)), BENCH_LIMIT=str(int(limit))
                )
                wsgi = "benchmarks.security_overhead:served()"
            cmd = [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(GUNICORN_CONF),
                "--no-control-socket",
                wsgi,
            ]
            proc = procs.start(
                cmd,
                tmp,
                name=f"gunicorn-{tag}",
                env=env,
                ready=http_ready(f"http://127.0.0.1:{port}/healthz"),
                timeout=90,
            )
            servers[(app, name)] = (port, proc.pid)
    return servers


def load(
    port: int, key: str, corpus: list[tuple[str, str]], offset: int, duration: float = DURATION
):
    headers = {"X-API-Key": key, "Content-Type": "application/json"}

    def request_for(thread: int, n: int) -> bytes:
        number = offset + thread * 1_000_000 + n
        return build_request(
            "POST",
            "/api/v1/tickets",
            "127.0.0.1",
            json.dumps(ticket(corpus, number)).encode(),
            headers,
        )

    return run_load(
        "127.0.0.1", port, request_for, expect=201, duration=duration, concurrency=CONCURRENCY
    )


def under_gunicorn(tmp: Path, redis, corpus: list[tuple[str, str]], started: float):
    """Load results and CPU seconds (workers, Redis) per server."""
    from tests.harness import start_postgres

    postgres = start_postgres()
    try:
        postgres.execute("CREATE DATABASE ticketing")
        db_url = postgres.url("ticketing")
        keys = {SERVICE: prepare_database(db_url), SMALL: BENCH_KEY}
        with ProcessGroup() as procs:
            servers = start_servers(tmp, procs, db_url, redis.url)
            say(
                f"[{time.monotonic() - started:4.0f} s] {len(servers)} gunicorn servers "
                f"({WORKERS} workers x {THREADS} threads each); {ROUNDS} rounds x "
                f"{DURATION:g} s per server, {CONCURRENCY} connections"
            )
            offset = 0
            for (app, _), (port, _) in servers.items():  # first requests: connections, caches
                load(port, keys[app], corpus, offset, duration=WARMUP)
                offset += 100_000_000
            results: dict[tuple[str, str], list] = {server: [] for server in servers}
            cpu: dict[tuple[str, str], list[float]] = {server: [0.0, 0.0] for server in servers}
            for n in range(ROUNDS):  # every other round in reverse: drift hits all alike
                for server in list(servers) if n % 2 == 0 else list(servers)[::-1]:
                    port, pid = servers[server]
                    workers, redis_cpu = tree_cpu_seconds(pid), cpu_seconds(redis.process.pid)
                    results[server].append(load(port, keys[server[0]], corpus, offset))
                    cpu[server][0] += tree_cpu_seconds(pid) - workers
                    cpu[server][1] += cpu_seconds(redis.process.pid) - redis_cpu
                    offset += 100_000_000
    finally:
        postgres.cleanup()
    return results, cpu


# ------------------------------------------------------ the monitor's own cost


class Actor:
    kind, id = "partner", 1


def _actor():
    if "bench_actor" not in g:
        ok = request.headers.get("X-API-Key") == BENCH_KEY
        if not ok:
            signals.auth_failed.send(
                current_app._get_current_object(), key_prefix=None, reason="unknown"
            )
        g.bench_actor = Actor() if ok else None
    return g.bench_actor


def build(
    db_url: str, redis_url: str | None, scan: bool, limit: bool, *, create_tables: bool = True
) -> Flask:
    """The small app: key check, JSON body, 201; with the monitor as asked."""
    app = Flask(f"bench-{scan}-{limit}")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=db_url,
        SECURITY={"scan": {"enabled": scan}},
        RATELIMITS={
            "enabled": limit,
            "storage_url": redis_url or "memory://",
            "limits": {"api_call": HIGH, "ticket_create": HIGH, "login": HIGH},
        },
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

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    if create_tables:
        with app.app_context():
            SecurityEvent.__table__.create(db.engine, checkfirst=True)
    return app


def served() -> Flask:
    """For gunicorn: ``benchmarks.security_overhead:served()``, configured by BENCH_* variables."""
    return build(
        os.environ["BENCH_DB"],
        os.environ.get("REDIS_URL"),
        scan=os.environ["BENCH_SCAN"] == "1",
        limit=os.environ["BENCH_LIMIT"] == "1",
        create_tables=False,
    )


@contextlib.contextmanager
def counting_redis_commands():
    """Count the commands (or pipelines) the Redis client sends meanwhile: round trips."""
    from redis.connection import Connection

    original = Connection.send_packed_command
    sent = [0]

    def counted(self, *args, **kwargs):
        sent[0] += 1
        return original(self, *args, **kwargs)

    Connection.send_packed_command = counted
    try:
        yield sent
    finally:
        Connection.send_packed_command = original


def client_cost(app: Flask, corpus: list[tuple[str, str]], n: int, offset: int) -> float:
    """CPU seconds this process spends per request (steadier than wall time on a busy machine)."""
    client = app.test_client()
    headers = {"X-API-Key": BENCH_KEY}
    bodies = [ticket(corpus, offset + i) for i in range(n)]
    start = time.process_time()
    for body in bodies:
        response = client.post("/api/v1/tickets", json=body, headers=headers)
        if response.status_code != 201:
            raise RuntimeError(f"unexpected {response.status_code}: {response.get_data(True)}")
    return (time.process_time() - start) / n


def in_process(
    tmp: Path, redis_url: str, corpus: list[tuple[str, str]]
) -> tuple[dict[str, float], float]:
    """CPU seconds per request through the test client per variant, and Redis round trips."""
    db_url = f"sqlite:///{tmp / 'client.db'}"
    variants = {
        OFF: build(db_url, None, scan=False, limit=False),
        SCAN: build(db_url, None, scan=True, limit=False),
        LIMIT_MEMORY: build(db_url, "memory://", scan=False, limit=True),
        LIMIT: build(db_url, redis_url, scan=False, limit=True),
        BOTH: build(db_url, redis_url, scan=True, limit=True),
    }
    offset = 10_000_000
    for app in variants.values():  # warm up
        client_cost(app, corpus, 50, offset)
        offset += 50
    best = {name: float("inf") for name in variants}
    for _ in range(CLIENT_ROUNDS):
        for name, app in variants.items():
            best[name] = min(best[name], client_cost(app, corpus, CLIENT_REQUESTS, offset))
            offset += CLIENT_REQUESTS
    with counting_redis_commands() as sent:
        client_cost(variants[LIMIT], corpus, CLIENT_REQUESTS, offset)
    return best, sent[0] / CLIENT_REQUESTS


# --------------------------------------------------------------------- main


def main() -> int:
    from tests.harness import start_redis

    logging.disable(logging.WARNING)
    corpus = texts()
    started = time.monotonic()
    with workdir("security-bench") as tmp, ProcessGroup() as procs:
        redis = start_redis(tmp)
        procs.add(redis.process)
        results, cpu = under_gunicorn(tmp, redis, corpus, started)
        say(f"[{time.monotonic() - started:4.0f} s] in-process pass (Flask test client)")
        client, round_trips = in_process(tmp, redis.url, corpus)
        say(f"[{time.monotonic() - started:4.0f} s] done")
    return report(results, cpu, client, round_trips)


def report(
    results: dict[tuple[str, str], list],
    cpu: dict[tuple[str, str], list[float]],
    client: dict[str, float],
    round_trips: float,
) -> int:
    served = {server: sum(r.ok for r in results[server]) for server in results}

    def throughput(app: str, name: str) -> float:
        return served[(app, name)] / sum(r.duration for r in results[(app, name)])

    def cpu_per_request(app: str, name: str) -> float:
        return sum(cpu[(app, name)]) / served[(app, name)]

    for app in (SERVICE, SMALL):
        off = throughput(app, OFF)
        say()
        say(
            f"{app[0].upper()}{app[1:]} under gunicorn: POST /api/v1/tickets ({CONCURRENCY} "
            "connections; CPU per request: the server's workers and Redis)"
        )
        rows = []
        for name in CONFIGS:
            server = (app, name)
            value = throughput(app, name)
            failed = sum(
                sum(c for s, c in r.statuses.items() if s != 201) + r.errors
                for r in results[server]
            )
            workers_ms, redis_ms = (seconds / served[server] * 1000 for seconds in cpu[server])
            rows.append(
                [
                    name,
                    f"{value:.0f}",
                    f"{value / off:.2f}",
                    f"{workers_ms:.2f}",
                    f"{redis_ms:.3f}",
                    f"{cpu_per_request(app, OFF) / cpu_per_request(app, name):.2f}",
                    failed,
                ]
            )
        say(
            table(
                [
                    "scanning / rate limiting",
                    "req/s",
                    "on/off",
                    "CPU ms workers",
                    "Redis",
                    "on/off by CPU",
                    "failed",
                ],
                rows,
            )
        )
        for name in CONFIGS:
            errors = [r.first_error for r in results[(app, name)] if r.first_error]
            if errors:
                say(f"  first failure ({name}): {errors[0]}")

    bare = client[OFF]
    say()
    say(
        f"The small app through Flask's test client, in this process (best of {CLIENT_ROUNDS} "
        f"rounds x {CLIENT_REQUESTS}): the CPU the monitor adds to a request (Redis' own CPU "
        "is in the tables above)"
    )
    rows = [
        [name, f"{value * 1e6:.0f}", f"{bare / value:.2f}", f"{(value - bare) * 1e6:+.0f}"]
        for name, value in client.items()
    ]
    say(table(["monitor", "CPU us/request", "on/off", "added us"], rows))
    say(f"  Redis round trips per ticket creation (rate limiting): {round_trips:.2f}")

    ratio = {name: throughput(SERVICE, name) / throughput(SERVICE, OFF) for name in CONFIGS}
    # The monitor does the same work for the same request whatever the view does,
    # so its CPU per request on the small app, set against the ticket service's
    # CPU per ticket, gives its share of a ticket creation. On a shared machine
    # this is far steadier than comparing the ticket service's four servers.
    added = cpu_per_request(SMALL, BOTH) - cpu_per_request(SMALL, OFF)
    share = added / (cpu_per_request(SERVICE, OFF) + added)
    cost_ok = share < TARGET_COST
    trips_ok = round_trips <= TARGET_ROUND_TRIPS
    say()
    say(
        f"Scanning + rate limiting add {added * 1000:.2f} ms of CPU per request (the small app: "
        f"workers and Redis); a ticket creation costs the ticket service "
        f"{cpu_per_request(SERVICE, OFF) * 1000:.1f} ms without them: "
        f"{share * 100:.1f}% of its CPU."
    )
    say(
        f"Measured directly on the ticket service: on/off {ratio[BOTH]:.2f} (scanning only "
        f"{ratio[SCAN]:.2f}, rate limiting only {ratio[LIMIT]:.2f}), by CPU per ticket "
        f"{cpu_per_request(SERVICE, OFF) / cpu_per_request(SERVICE, BOTH):.2f}; differences "
        "of a few percent are within this machine's noise there."
    )
    say()
    say(
        verdict(
            f"scanning + rate limiting cost the ticket service under {TARGET_COST * 100:.0f}% "
            "of its ticket-creation throughput",
            cost_ok,
            f"{share * 100:.1f}% of its CPU per ticket; directly measured on/off {ratio[BOTH]:.2f}",
        )
    )
    say(
        verdict(
            f"at most {TARGET_ROUND_TRIPS} Redis round trip per ticket creation",
            trips_ok,
            f"{round_trips:.2f}",
        )
    )
    return 0 if cost_ok and trips_ok else 1


if __name__ == "__main__":
    sys.exit(main())
