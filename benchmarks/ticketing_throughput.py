"""The ticket service under gunicorn on PostgreSQL, next to bare Flask endpoints.

    python -m benchmarks.ticketing_throughput

A private PostgreSQL cluster holds the migrated ticketing schema with 100,000
tickets (half of them the benchmark partner's, the rest spread over 99 other
partners). Three gunicorn servers run with the same settings
(``ticketing/gunicorn.conf.py``: 2 workers x 8 threads, gthread):

- the bare endpoints of ``benchmarks/_bare_app.py`` (the ceiling: Flask parses
  the JSON and answers JSON; no database, no authentication), and a second,
  lower ceiling for requests that store something: the same POST plus one
  ``INSERT ... RETURNING`` through SQLAlchemy Core;
- the ticket service with security scanning and Redis rate limiting on (the
  shipped defaults, limits raised so that nothing is refused);
- the ticket service with both off (``security.scan.enabled: false``,
  ``ratelimits.enabled: false``).

In both ticket services the outbox delivery thread is off: a new ticket still
queues its notification in the same transaction, but nothing posts them to
an Alertmanager during the run (delivery works in batches of 50, apart from
the requests).

A load generator in this process (16 threads, each on its own kept-alive
connection, a minimal HTTP client so that it takes little of the two cores)
sends, back to back: ``POST /api/v1/tickets`` (create), ``GET /api/v1/tickets``
(list: the newest 25 of the partner's 50,000) and ``POST
/api/v1/tickets/<id>/messages`` (post message), and the bare ``POST``,
``POST`` with an insert, and ``GET``. The cases take turns in short slices for
several rounds (every other round in reverse order; each endpoint's "on" and
"off" side by side), so drifting machine load hits them alike; a request
counts when its answer arrives within a slice. The CPU time the servers
spend (master and workers from /proc, and Redis for the server that uses it)
is added up per case: the servers are CPU-bound, so CPU time per request
gives the cost of scanning and limiting without the machine's noise, next to
the throughput measured directly. Afterwards the resident size of each
gunicorn worker is read.

Targets: create at least 40 % of the bare endpoint's throughput; scanning plus
limiting cost under 15 % of throughput (judged by CPU per request); a
ticketing worker under 120 MB.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ._support import (ROOT, LoadResult, ProcessGroup, build_request, descendants, http_ready,
                       memory_mb, ms, python_env, run_load, say, table, ticketing_database,
                       tree_cpu_seconds, verdict, workdir)

TICKETS = 100_000
PARTNERS = 100
WORKERS, THREADS = 2, 8
CONCURRENCY = 16
ROUNDS = 5
DURATION = 2.0                  # seconds per case per round
TARGET_CREATE = 0.40
TARGET_SECURITY = 0.15
TARGET_WORKER_MB = 120.0
BARE_POST = "bare POST (JSON in, JSON out)"
BARE_DB = "bare POST + one INSERT (SQLAlchemy Core)"
BARE_GET = "bare GET (JSON out)"
ON, OFF = "scanning + limits on", "scanning + limits off"
GUNICORN_CONF = ROOT / "ticketing" / "gunicorn.conf.py"
HIGH = "1000000000/minute"      # never reached: limits are checked, not enforced
TICKET_BODIES = [
    {"title": "Transactions failing with 503 since this morning",
     "description": "Since 09:00 UTC every POST /transactions from our billing system fails "
                    "with a 503 after about 30 seconds. We retried with backoff; the pool "
                    "allocation request id is 7c1e-44a0. Can you check the API gateway?"},
    {"title": "Invoice for October shows the wrong energy units",
     "description": "The October invoice lists 12,400 kWh drawn from the shared pool, but "
                    "our meter readings add up to 11,950 kWh. Please send a corrected "
                    "invoice or a credit note for the difference."},
    {"title": "Cannot log in to the partner portal",
     "description": "Two of our operators get 'invalid credentials' since the password "
                    "reset yesterday. Their accounts are not locked. Is two-factor login "
                    "required now?"},
    {"title": "Webhook retries arrive out of order",
     "description": "Our endpoint receives transaction.completed before transaction.created "
                    "for about 1 in 200 transactions when the first delivery timed out. Is "
                    "ordering guaranteed, or should we sort by sequence number?"},
]
MESSAGE = {"body": "Thanks. We retried at 10:15 UTC and still get the error; the request "
                   "ids are in the attached log. Anything else we can send you?"}


@dataclass
class Server:
    name: str
    port: int
    proc: object = None
    workers: list[dict] = field(default_factory=list)


@dataclass
class Case:
    name: str
    server: str
    requests: list[bytes]
    expect: int
    ceiling: str | None = None           # the bare case it is compared with
    rounds: list[LoadResult] = field(default_factory=list)
    cpu: float = 0.0                     # server (and Redis) CPU seconds over all rounds
    answered: int = 0                    # every answer over all rounds

    @property
    def cpu_per_request(self) -> float:
        return self.cpu / self.answered if self.answered else float("nan")

    @property
    def total(self) -> LoadResult:
        merged = LoadResult(sum(r.duration for r in self.rounds))
        for r in self.rounds:
            merged.latencies.extend(r.latencies)
            for status, count in r.statuses.items():
                merged.statuses[status] = merged.statuses.get(status, 0) + count
            merged.errors += r.errors
            merged.first_error = merged.first_error or r.first_error
        return merged


# ------------------------------------------------------------------- data

def prepare_database(url: str) -> tuple[str, list[int]]:
    """Migrate, create the partners and the benchmark partner's API key, store
    the tickets; returns the key and ids of the partner's open tickets."""
    from sqlalchemy import text

    from ticketing.choices import CATEGORIES, PRIORITIES, STATUSES
    from ticketing.db import db

    logging.disable(logging.WARNING)  # the set-up's own app: no notices about its settings
    with ticketing_database(url) as (partner_id, key):
        db.session.execute(text(
            "INSERT INTO partners (name, status, created_at) "
            "SELECT 'Partner ' || x, 'active', now() AT TIME ZONE 'UTC' "
            "FROM generate_series(2, :n) AS x"), {"n": PARTNERS})

        def pick(values: tuple[str, ...], step: int) -> str:
            options = ", ".join(f"'{v}'" for v in values)
            return f"(ARRAY[{options}])[1 + (x * {step}) % {len(values)}]"

        # Half the tickets are the benchmark partner's; the other half spread
        # over the other partners. Created over the last year, oldest first.
        db.session.execute(text(
            "INSERT INTO tickets (partner_id, title, description, category, status, priority, "
            "created_at, updated_at, first_response_due_at, resolution_due_at) "
            f"SELECT CASE WHEN x % 2 = 0 THEN {partner_id} ELSE 2 + x % {PARTNERS - 1} END, "
            "'Seeded ticket ' || x, 'A stored ticket for the benchmark, number ' || x || '.', "
            f"{pick(CATEGORIES, 3)}, {pick(STATUSES, 1)}, {pick(PRIORITIES, 7)}, "
            "t, t, t + interval '8 hours', t + interval '3 days' "
            "FROM (SELECT x, (now() AT TIME ZONE 'UTC') - make_interval(secs => (:n - x) * 315) "
            "      AS t FROM generate_series(1, :n) AS x) AS s"), {"n": TICKETS})
        db.session.execute(text("CREATE TABLE bare_items (id SERIAL PRIMARY KEY, title TEXT, "
                                "description TEXT)"))
        db.session.commit()
        open_ids = db.session.execute(text(
            "SELECT id FROM tickets WHERE partner_id = :p AND status = 'open' "
            "ORDER BY id DESC LIMIT 400"), {"p": partner_id}).scalars().all()
        db.session.execute(text("ANALYZE"))
    return key, list(open_ids)


def ticketing_config(path: Path, secure: bool, redis_url: str) -> Path:
    section: dict = {"outbox": {"worker": False}}
    if secure:
        section["security"] = {"scan": {"enabled": True}}
        section["ratelimits"] = {"enabled": True, "storage_url": redis_url,
                                 "limits": {"api_call": HIGH, "ticket_create": HIGH}}
    else:
        section["security"] = {"scan": {"enabled": False}}
        section["ratelimits"] = {"enabled": False}
    path.write_text(yaml.safe_dump(section, sort_keys=False))
    return path


# -------------------------------------------------------------------- run

def start_servers(tmp: Path, procs: ProcessGroup, db_url: str, redis_url: str) -> dict[str, Server]:
    from tests.harness import free_port

    servers = {}
    for name, app in (("bare", "benchmarks._bare_app:app"),
                      ("secure", "ticketing:create_app()"),
                      ("plain", "ticketing:create_app()")):
        port = free_port()
        metrics_dir = tmp / f"metrics-{name}"
        metrics_dir.mkdir()
        env = python_env(TICKETING_BIND=f"127.0.0.1:{port}", TICKETING_WORKERS=str(WORKERS),
                         TICKETING_THREADS=str(THREADS), PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
                         TICKETING_DATABASE_URL=db_url, REDIS_URL=redis_url)
        if name != "bare":
            env["TICKETING_CONFIG"] = str(ticketing_config(tmp / f"{name}.yml", name == "secure",
                                                           redis_url))
        cmd = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "--no-control-socket",
               app]
        server = Server(name, port)
        server.proc = procs.start(cmd, tmp, name=f"gunicorn-{name}", env=env)
        servers[name] = server
    for server in servers.values():
        http_ready_ = http_ready(f"http://127.0.0.1:{server.port}/healthz")
        deadline = time.monotonic() + 90
        while not http_ready_():
            if not server.proc.running() or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn {server.name} did not start:\n"
                                   f"{server.proc.log()[-3000:]}")
            time.sleep(0.2)
    return servers


def cases(key: str, ticket_ids: list[int]) -> list[Case]:
    host = "127.0.0.1"
    auth = {"X-API-Key": key, "Content-Type": "application/json"}
    creates = [build_request("POST", "/api/v1/tickets", host, json.dumps(b).encode(), auth)
               for b in TICKET_BODIES]
    bare_posts = [build_request("POST", "/bare", host, json.dumps(b).encode(),
                                {"Content-Type": "application/json"}) for b in TICKET_BODIES]
    message = json.dumps(MESSAGE).encode()
    messages = [build_request("POST", f"/api/v1/tickets/{i}/messages", host, message, auth)
                for i in ticket_ids]
    listing = [build_request("GET", "/api/v1/tickets", host, headers={"X-API-Key": key})]
    bare_get = [build_request("GET", "/bare", host)]
    bare_db = [build_request("POST", "/bare/db", host, json.dumps(b).encode(),
                             {"Content-Type": "application/json"}) for b in TICKET_BODIES]
    found = [Case(BARE_POST, "bare", bare_posts, 201),
             Case(BARE_DB, "bare", bare_db, 201, BARE_POST),
             Case(BARE_GET, "bare", bare_get, 200)]
    # Each endpoint with the monitor on, then off: the pairs run side by side.
    for endpoint, reqs, expect, ceiling in (("create ticket", creates, 201, BARE_POST),
                                            ("list tickets", listing, 200, BARE_GET),
                                            ("post message", messages, 201, BARE_POST)):
        for server, label in (("secure", ON), ("plain", OFF)):
            found.append(Case(f"{endpoint}, {label}", server, reqs, expect, ceiling))
    return found


def run_case(case: Case, server: Server, redis_pid: int | None) -> None:
    """One slice of load; the server's CPU time (master and workers, and Redis
    for the server that uses it) is added up along with the answers."""
    pids = [server.proc.pid] + ([redis_pid] if server.name == "secure" and redis_pid else [])
    cpu0 = sum(tree_cpu_seconds(pid) for pid in pids)
    result = _load(case, server.port)
    case.cpu += sum(tree_cpu_seconds(pid) for pid in pids) - cpu0
    case.answered += result.answered
    case.rounds.append(result)


def _load(case: Case, port: int) -> LoadResult:
    requests = case.requests
    per_thread = max(1, len(requests) // CONCURRENCY)

    def request_for(thread: int, n: int) -> bytes:
        # Each thread keeps to its own slice (message posts: its own tickets, so
        # threads never wait on each other's row locks).
        return requests[(thread * per_thread + n % per_thread) % len(requests)]

    return run_load("127.0.0.1", port, request_for, expect=case.expect, duration=DURATION,
                    concurrency=CONCURRENCY)


def main() -> int:
    from tests.harness import start_postgres, start_redis

    started = time.monotonic()
    with workdir("ticketing-bench") as tmp, ProcessGroup() as procs:
        postgres = start_postgres()
        try:
            postgres.execute("CREATE DATABASE ticketing")
            db_url = postgres.url("ticketing")
            key, ticket_ids = prepare_database(db_url)
            redis = start_redis(tmp)
            procs.add(redis.process)
            say(f"[{time.monotonic() - started:4.0f} s] {TICKETS:,} tickets stored; "
                f"starting gunicorn x3 ({WORKERS} workers x {THREADS} threads each)")
            servers = start_servers(tmp, procs, db_url, redis.url)
            all_cases = cases(key, ticket_ids)
            say(f"[{time.monotonic() - started:4.0f} s] {len(all_cases)} cases x {ROUNDS} rounds "
                f"x {DURATION:g} s, {CONCURRENCY} client connections")
            client_cpu0 = time.process_time()
            load_started = time.monotonic()
            for n in range(ROUNDS):  # every other round in reverse: drift hits all alike
                for case in (all_cases if n % 2 == 0 else all_cases[::-1]):
                    run_case(case, servers[case.server], redis.process.pid)
            client_share = (time.process_time() - client_cpu0) / (time.monotonic() - load_started)
            for server in servers.values():
                server.workers = [memory_mb(pid) for pid in descendants(server.proc.pid)]
            say(f"[{time.monotonic() - started:4.0f} s] done")
        finally:
            postgres.cleanup()
    return report(all_cases, servers, client_share)


def report(all_cases: list[Case], servers: dict[str, Server], client_share: float) -> int:
    totals = {case.name: case.total for case in all_cases}
    say()
    say(f"Throughput and latency ({CONCURRENCY} connections, {ROUNDS} rounds x {DURATION:g} s "
        f"per case; the load generator used {client_share * 100:.0f}% of a core)")
    rows = []
    for case in all_cases:
        t = totals[case.name]
        ratio = f"{t.throughput / totals[case.ceiling].throughput * 100:.0f}%" if case.ceiling \
            else "ceiling"
        with_db = (f"{t.throughput / totals[BARE_DB].throughput * 100:.0f}%"
                   if case.ceiling == BARE_POST and case.name != BARE_DB else "")
        others = sum(c for s, c in t.statuses.items() if s != case.expect) + t.errors
        rows.append([case.name, f"{t.throughput:.0f}", ms(t.p(50)), ms(t.p(99)), ratio, with_db,
                     others])
    say(table(["case", "req/s", "p50 ms", "p99 ms", "of bare", "of bare+INSERT", "failed"],
              rows))
    failures = [(c.name, totals[c.name].first_error) for c in all_cases
                if totals[c.name].first_error]
    for name, error in failures:
        say(f"  first failure in {name}: {error}")

    say()
    say("Cost of scanning + rate limiting: throughput lost when on, measured directly and "
        "from the server's CPU time per request (workers, plus Redis when on); the servers are "
        "CPU-bound, so the CPU figure is the cost with the machine's noise taken out")
    costs, direct = {}, {}
    rows = []
    by_name = {case.name: case for case in all_cases}
    for endpoint in ("create ticket", "list tickets", "post message"):
        on, off = totals[f"{endpoint}, {ON}"], totals[f"{endpoint}, {OFF}"]
        cpu_on = by_name[f"{endpoint}, {ON}"].cpu_per_request
        cpu_off = by_name[f"{endpoint}, {OFF}"].cpu_per_request
        direct[endpoint] = 1 - on.throughput / off.throughput
        costs[endpoint] = 1 - cpu_off / cpu_on
        rows.append([endpoint, f"{off.throughput:.0f}", f"{on.throughput:.0f}",
                     f"{direct[endpoint] * 100:.1f}%", f"{cpu_off * 1000:.2f}",
                     f"{cpu_on * 1000:.2f}", f"{costs[endpoint] * 100:.1f}%"])
    say(table(["endpoint", "off req/s", "on req/s", "cost (direct)", "CPU ms off",
               "CPU ms on", "cost (by CPU)"], rows))

    say()
    say("Gunicorn worker memory after the run")
    rows = []
    for server in servers.values():
        for n, worker in enumerate(server.workers, 1):
            rows.append([f"{server.name} worker {n}", f"{worker.get('rss', 0):.1f}",
                         f"{worker.get('pss', 0):.1f}"])
    say(table(["server", "RSS MiB", "PSS MiB"], rows))

    create_on, create_off = totals[f"create ticket, {ON}"], totals[f"create ticket, {OFF}"]
    bare, bare_db = totals[BARE_POST], totals[BARE_DB]
    say()
    say(verdict("ticket create at least 40% of the bare endpoint",
                create_on.throughput / bare.throughput >= TARGET_CREATE,
                f"{create_on.throughput / bare.throughput * 100:.0f}% with scanning and limits "
                f"on ({create_on.throughput:.0f} vs {bare.throughput:.0f} req/s), "
                f"{create_off.throughput / bare.throughput * 100:.0f}% with them off; "
                f"{create_on.throughput / bare_db.throughput * 100:.0f}% of a bare POST that "
                f"inserts one row"))
    worst = max(costs, key=costs.get)
    say(verdict("scanning plus rate limiting cost under 15% of throughput",
                all(cost < TARGET_SECURITY for cost in costs.values()),
                "by CPU per request: " + ", ".join(f"{name} {cost * 100:.1f}%"
                                                   for name, cost in costs.items())
                + f" (worst: {worst}); directly: " + ", ".join(
                    f"{name} {cost * 100:.1f}%" for name, cost in direct.items())))
    ticketing_workers = [w for s in servers.values() if s.name != "bare" for w in s.workers]
    rss = max((w.get("rss", 0) for w in ticketing_workers), default=float("nan"))
    say(verdict("a ticketing worker under 120 MB resident", rss < TARGET_WORKER_MB,
                f"largest worker RSS {rss:.1f} MiB of {len(ticketing_workers)}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
