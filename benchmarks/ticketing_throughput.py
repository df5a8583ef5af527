"""The ticket service under gunicorn on PostgreSQL, next to bare Flask endpoints.

    python -m benchmarks.ticketing_throughput
    python -m benchmarks.ticketing_throughput --profile DIR   # py-spy samples of the workers

A private PostgreSQL cluster holds the migrated ticketing schema with 100,000
tickets (half of them the benchmark partner's, the rest spread over 99 other
partners), and a second database the same with 1,000. Four gunicorn servers
run with the same settings (``ticketing/runtime/gunicorn.conf.py``: 2 workers x 8
threads, gthread):

- the bare endpoints of ``benchmarks/_bare_app.py``: the ceilings (Flask
  parses the JSON and answers JSON; no database, no authentication; and the
  same POST plus one ``INSERT ... RETURNING``), and the *floors* of the two
  write routes: a bare POST that chooses the ticket's priority and category
  with the same classification call the route makes (keyword rules and the
  category model: choosing the category is work the route must do) and then
  makes exactly the statements a ticket creation makes (``INSERT`` ticket,
  ``INSERT`` audit rows, ``INSERT`` outbox row, ``COMMIT``), and one that
  makes exactly those of posting a message (``SELECT`` ticket, ``INSERT``
  message, ``UPDATE`` ticket, ``COMMIT``), through SQLAlchemy Core with the
  service's pool, on the service's tables;
- the ticket service with security scanning and Redis rate limiting on (the
  shipped defaults, limits raised so that nothing is refused);
- the ticket service with both off (``security.scan.enabled: false``,
  ``ratelimits.enabled: false``);
- the ticket service with both on, on the database of 1,000 tickets (the
  list's latency there is the reference for the one at 100,000).

In the ticket services the outbox delivery thread is off: a new ticket still
queues its notification in the same transaction, but nothing posts them to
an Alertmanager during the run (delivery works in batches of 50, apart from
the requests).

A load generator in this process (16 threads, each on its own kept-alive
connection, a minimal HTTP client so that it takes little of the two cores)
sends the cases back to back, in short slices, for several rounds (every
other round in reverse order; each endpoint's "on" and "off", and each write
route and its floor, side by side), so drifting machine load hits them alike;
a request counts when its answer arrives within a slice. Ratios are taken
per round between slices that ran next to each other, and their median and
spread (lowest-highest over the rounds) are reported. The CPU time the
servers spend (master and workers from /proc, and Redis for the servers that
use it) is added up per slice: the servers are CPU-bound, so CPU time per
request gives the cost of scanning and limiting without most of the
machine's noise. Each round also runs *pairs*: the monitor on and off for
each endpoint, and the list at 100,000 and at 1,000 tickets, loaded at the
same time on their two servers (half the connections each), so whatever else
the machine runs hits both sides alike; the monitor's cost and the list's
latency growth are judged from the pairs. Afterwards requests of each route
go to the server with the monitor on, one after the other on one connection,
for a little more than half the known keys' TTL (31 s, so that the periodic
renewal of the key's shared marker falls inside), while a ``MONITOR``
connection to Redis lists every command it receives: the commands the
workers send per request (not those the limits' script runs inside Redis)
bound its round trips from above. Last, the resident size of each gunicorn
worker is read.

Targets: create ticket and post message at least 60 % of their floors (with
scanning and limits on; the creation's floor classifies as the route does);
scanning plus limiting at most 15 % of the CPU per request on each POST route
(Redis included; paired, median over the rounds) and at most one Redis round
trip per request (the limits stay exact: every request is counted in Redis,
not in the worker); the list's p99 at 100,000
tickets at most 1.5 times its p99 at 1,000; a ticketing worker under 120 MB.
Every ratio is judged by its median over the rounds, the list's p99 growth
too (a p99 pooled over all rounds is set by the few slowest requests of the
whole run, wherever the machine's other work happened to delay them; it is
printed beside the median).

``--profile DIR`` measures nothing: it loads create ticket and post message
(monitor on) for 15 s each while ``py-spy record --gil --subprocesses``
samples the server's workers, writes the collapsed stacks to
``DIR/<case>.txt`` and prints where the samples fall.
"""

from __future__ import annotations

import json
import logging
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ticketing.security.rate_limits import KnownKeys

from ._support import (
    ROOT,
    LoadResult,
    ProcessGroup,
    RawConnection,
    build_request,
    descendants,
    http_ready,
    memory_mb,
    ms,
    python_env,
    run_load,
    say,
    table,
    ticketing_database,
    tree_cpu_seconds,
    tree_switches,
    verdict,
    workdir,
)

TICKETS = 100_000
SMALL_TICKETS = 1_000
PARTNERS = 100
WORKERS, THREADS = 2, 8
CONCURRENCY = 16
ROUNDS = 8  # the monitor's CPU target is judged on the median of at least 8 paired rounds
DURATION = 2.0  # seconds per case per round
PROFILE_SECONDS = 15.0
TARGET_OF_FLOOR = 0.60
TARGET_SECURITY = 0.15
TARGET_REDIS_TRIPS = 1.0  # per request, with the monitor on
#: Per route, for counting the Redis commands: longer than half the TTL of the known
#: keys, so that one renewal of the key's shared marker (a SET) falls inside.
REDIS_COUNT_SECONDS = KnownKeys().ttl / 2 + 1
TARGET_LIST_GROWTH = 1.5
TARGET_WORKER_MB = 120.0
BARE_POST = "bare POST (JSON in, JSON out)"
BARE_DB = "bare POST + one INSERT (SQLAlchemy Core)"
BARE_GET = "bare GET (JSON out)"
FLOOR_CREATE = "floor: create ticket's classification + statements (Core)"
FLOOR_MESSAGE = "floor: post message's statements (Core)"
ON, OFF = "scanning + limits on", "scanning + limits off"
LIST_SMALL = f"list tickets, {ON}, {SMALL_TICKETS // 1000}k tickets"
ENDPOINTS = ("create ticket", "list tickets", "post message")
POST_ROUTES = ("create ticket", "post message")
FLOORS = {"create ticket": FLOOR_CREATE, "post message": FLOOR_MESSAGE}
GUNICORN_CONF = ROOT / "ticketing" / "runtime" / "gunicorn.conf.py"
HIGH = "1000000000/minute"  # never reached: limits are checked, not enforced
TICKET_BODIES = [
    {
        "title": "Transactions failing with 503 since this morning",
        "description": "Since 09:00 UTC every POST /transactions from our billing system fails "
        "with a 503 after about 30 seconds. We retried with backoff; the pool "
        "allocation request id is 7c1e-44a0. Can you check the API gateway?",
    },
    {
        "title": "Invoice for October shows the wrong energy units",
        "description": "The October invoice lists 12,400 kWh drawn from the shared pool, but "
        "our meter readings add up to 11,950 kWh. Please send a corrected "
        "invoice or a credit note for the difference.",
    },
    {
        "title": "Cannot log in to the partner portal",
        "description": "Two of our operators get 'invalid credentials' since the password "
        "reset yesterday. Their accounts are not locked. Is two-factor login "
        "required now?",
    },
    {
        "title": "Webhook retries arrive out of order",
        "description": "Our endpoint receives transaction.completed before transaction.created "
        "for about 1 in 200 transactions when the first delivery timed out. Is "
        "ordering guaranteed, or should we sort by sequence number?",
    },
]
MESSAGE = {
    "body": "Thanks. We retried at 10:15 UTC and still get the error; the request "
    "ids are in the attached log. Anything else we can send you?"
}


@dataclass
class Server:
    name: str
    port: int
    uses_redis: bool = False
    proc: object = None
    workers: list[dict] = field(default_factory=list)


@dataclass
class Case:
    name: str
    server: str
    requests: list[bytes]
    expect: int
    ceiling: str | None = None  # the bare case it is compared with
    rounds: list[LoadResult] = field(default_factory=list)
    round_cpu: list[float] = field(default_factory=list)  # server (and Redis) CPU s per round
    switches: int = 0  # the server's voluntary context switches, all rounds

    @property
    def switches_per_request(self) -> float:
        return self.switches / self.answered if self.answered else float("nan")

    @property
    def cpu(self) -> float:
        return sum(self.round_cpu)

    @property
    def answered(self) -> int:
        return sum(r.answered for r in self.rounds)

    @property
    def cpu_per_request(self) -> float:
        return self.cpu / self.answered if self.answered else float("nan")

    def round_cpu_per_request(self, n: int) -> float:
        answered = self.rounds[n].answered
        return self.round_cpu[n] / answered if answered else float("nan")

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


@dataclass
class RedisCount:
    """The commands Redis received from the ticket service's workers for each of
    ``requests`` requests of one route, sent one after the other."""

    endpoint: str
    requests: int
    commands: Counter[str] = field(default_factory=Counter)
    #: Commands sent per request (each at most one round trip), in order.
    per_request: list[int] = field(default_factory=list)
    inside_script: int = 0  # run by the limits' script inside Redis: no round trip

    @property
    def mean(self) -> float:
        return sum(self.per_request) / len(self.per_request) if self.per_request else float("nan")

    @property
    def over_one(self) -> int:
        return sum(1 for n in self.per_request if n > 1)


@dataclass
class Spread:
    """A ratio per round: its median and range."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def pct(self, digits: int = 1) -> str:
        """``median% (low-high%)``"""
        if not self.values:
            return "-"
        return (
            f"{self.median * 100:.{digits}f}% ({min(self.values) * 100:.{digits}f}-"
            f"{max(self.values) * 100:.{digits}f}%)"
        )

    def times(self) -> str:
        if not self.values:
            return "-"
        return f"{self.median:.2f}x ({min(self.values):.2f}-{max(self.values):.2f}x)"


@dataclass
class Pair:
    """Two cases loaded at the same time (half the connections each), every round:
    whatever else runs on the machine then hits both alike."""

    first: Case
    second: Case

    @property
    def label(self) -> str:
        return f"{self.first.name} | {self.second.name}"


# ------------------------------------------------------------------- data


def prepare_database(url: str, tickets: int) -> tuple[int, str, list[int]]:
    """Migrate, create the partners and the benchmark partner's API key, store
    ``tickets`` tickets; returns the partner's id, its key and ids of its open tickets."""
    from sqlalchemy import text

    from ticketing.db import db
    from ticketing.desk.choices import CATEGORIES, PRIORITIES, STATUSES

    logging.disable(logging.WARNING)  # the set-up's own app: no notices about its settings
    with ticketing_database(url) as (partner_id, key):
        db.session.execute(
            text(
                "INSERT INTO partners (name, status, created_at) "
                "SELECT 'Partner ' || x, 'active', now() AT TIME ZONE 'UTC' "
                "FROM generate_series(2, :n) AS x"
            ),
            {"n": PARTNERS},
        )

        def pick(values: tuple[str, ...], step: int) -> str:
            options = ", ".join(f"'{v}'" for v in values)
            return f"(ARRAY[{options}])[1 + (x * {step}) % {len(values)}]"

        # Half the tickets are the benchmark partner's; the other half spread
        # over the other partners. Created over the last year, oldest first.
        db.session.execute(
            text(
                "INSERT INTO tickets (partner_id, title, description, category, status, priority, "
                "created_at, updated_at, first_response_due_at, resolution_due_at) "
                f"SELECT CASE WHEN x % 2 = 0 THEN {partner_id} ELSE 2 + x % {PARTNERS - 1} END, "
                "'Seeded ticket ' || x, 'A stored ticket for the benchmark, number ' || x || '.', "
                f"{pick(CATEGORIES, 3)}, {pick(STATUSES, 1)}, {pick(PRIORITIES, 7)}, "
                "t, t, t + interval '8 hours', t + interval '3 days' "
                "FROM (SELECT x, "
                "(now() AT TIME ZONE 'UTC') - make_interval(secs => (:n - x) * :step) "
                "      AS t FROM generate_series(1, :n) AS x) AS s"
            ),
            {"n": tickets, "step": 315 * TICKETS // tickets},
        )
        db.session.execute(
            text("CREATE TABLE bare_items (id SERIAL PRIMARY KEY, title TEXT, description TEXT)")
        )
        db.session.commit()
        open_ids = (
            db.session.execute(
                text(
                    "SELECT id FROM tickets WHERE partner_id = :p AND status = 'open' "
                    "ORDER BY id DESC LIMIT 400"
                ),
                {"p": partner_id},
            )
            .scalars()
            .all()
        )
        db.session.execute(text("ANALYZE"))
    return partner_id, key, list(open_ids)


def ticketing_config(path: Path, secure: bool, redis_url: str) -> Path:
    section: dict = {"outbox": {"worker": False}}
    if secure:
        section["security"] = {"scan": {"enabled": True}}
        section["ratelimits"] = {
            "enabled": True,
            "storage_url": redis_url,
            "limits": {"api_call": HIGH, "ticket_create": HIGH},
        }
    else:
        section["security"] = {"scan": {"enabled": False}}
        section["ratelimits"] = {"enabled": False}
    path.write_text(yaml.safe_dump(section, sort_keys=False))
    return path


# -------------------------------------------------------------------- run


def start_servers(
    tmp: Path,
    procs: ProcessGroup,
    db_url: str,
    small_db_url: str,
    redis_url: str,
    partner_id: int,
    only: tuple[str, ...] | None = None,
) -> dict[str, Server]:
    from tests.harness import free_port

    servers = {}
    for name, app, url, secure in (
        ("bare", "benchmarks._bare_app:app", db_url, False),
        ("secure", "ticketing:create_app()", db_url, True),
        ("plain", "ticketing:create_app()", db_url, False),
        ("secure-1k", "ticketing:create_app()", small_db_url, True),
    ):
        if only is not None and name not in only:
            continue
        port = free_port()
        metrics_dir = tmp / f"metrics-{name}"
        metrics_dir.mkdir()
        env = python_env(
            TICKETING_BIND=f"127.0.0.1:{port}",
            TICKETING_WORKERS=str(WORKERS),
            TICKETING_THREADS=str(THREADS),
            PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
            TICKETING_DATABASE_URL=url,
            REDIS_URL=redis_url,
            BARE_PARTNER_ID=str(partner_id),
        )
        if name != "bare":
            env["TICKETING_CONFIG"] = str(ticketing_config(tmp / f"{name}.yml", secure, redis_url))
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(GUNICORN_CONF),
            "--no-control-socket",
            app,
        ]
        server = Server(name, port, uses_redis=secure)
        server.proc = procs.start(cmd, tmp, name=f"gunicorn-{name}", env=env)
        servers[name] = server
    for server in servers.values():
        http_ready_ = http_ready(f"http://127.0.0.1:{server.port}/healthz")
        deadline = time.monotonic() + 90
        while not http_ready_():
            if not server.proc.running() or time.monotonic() > deadline:
                raise RuntimeError(
                    f"gunicorn {server.name} did not start:\n{server.proc.log()[-3000:]}"
                )
            time.sleep(0.2)
    return servers


def cases(key: str, ticket_ids: list[int], small_key: str) -> list[Case]:
    host = "127.0.0.1"
    auth = {"X-API-Key": key, "Content-Type": "application/json"}
    plain_json = {"Content-Type": "application/json"}
    creates = [
        build_request("POST", "/api/v1/tickets", host, json.dumps(b).encode(), auth)
        for b in TICKET_BODIES
    ]
    bare_posts = [
        build_request("POST", "/bare", host, json.dumps(b).encode(), plain_json)
        for b in TICKET_BODIES
    ]
    message = json.dumps(MESSAGE).encode()
    messages = [
        build_request("POST", f"/api/v1/tickets/{i}/messages", host, message, auth)
        for i in ticket_ids
    ]
    listing = [build_request("GET", "/api/v1/tickets", host, headers={"X-API-Key": key})]
    small_listing = [
        build_request("GET", "/api/v1/tickets", host, headers={"X-API-Key": small_key})
    ]
    bare_get = [build_request("GET", "/bare", host)]
    bare_db = [
        build_request("POST", "/bare/db", host, json.dumps(b).encode(), plain_json)
        for b in TICKET_BODIES
    ]
    floor_creates = [
        build_request("POST", "/bare/ticket", host, json.dumps(b).encode(), plain_json)
        for b in TICKET_BODIES
    ]
    floor_messages = [
        build_request("POST", f"/bare/tickets/{i}/messages", host, message, plain_json)
        for i in ticket_ids
    ]
    found = [
        Case(BARE_POST, "bare", bare_posts, 201),
        Case(BARE_DB, "bare", bare_db, 201, BARE_POST),
        Case(BARE_GET, "bare", bare_get, 200),
    ]
    # Each endpoint with the monitor on, then off (and the write routes' floors
    # next to them): the pairs run side by side.
    for endpoint, reqs, expect, ceiling in (
        ("create ticket", creates, 201, BARE_POST),
        ("list tickets", listing, 200, BARE_GET),
        ("post message", messages, 201, BARE_POST),
    ):
        if endpoint == "create ticket":
            found.append(Case(FLOOR_CREATE, "bare", floor_creates, 201, BARE_POST))
        if endpoint == "post message":
            found.append(Case(FLOOR_MESSAGE, "bare", floor_messages, 201, BARE_POST))
        for server, label in (("secure", ON), ("plain", OFF)):
            found.append(Case(f"{endpoint}, {label}", server, reqs, expect, ceiling))
        if endpoint == "list tickets":
            found.append(Case(LIST_SMALL, "secure-1k", small_listing, 200, BARE_GET))
    return found


def run_case(case: Case, server: Server, redis_pid: int | None, duration: float = DURATION) -> None:
    """One slice of load; the server's CPU time (master and workers, and Redis
    for a server that uses it) is kept along with the answers."""
    pids = [server.proc.pid] + ([redis_pid] if server.uses_redis and redis_pid else [])
    cpu0 = sum(tree_cpu_seconds(pid) for pid in pids)
    switches0 = tree_switches(server.proc.pid)
    result = _load(case, server.port, duration)
    case.round_cpu.append(sum(tree_cpu_seconds(pid) for pid in pids) - cpu0)
    case.switches += tree_switches(server.proc.pid) - switches0
    case.rounds.append(result)


def run_pair(pair: Pair, servers: dict[str, Server], redis_pid: int | None) -> None:
    """Both cases of ``pair`` at once, each on its own server with half the connections;
    each server's CPU time (and Redis', for a server that uses it) is kept per case."""
    import threading

    sides = [(case, servers[case.server]) for case in (pair.first, pair.second)]
    assert sides[0][1] is not sides[1][1], "a pair needs two servers"

    def pids(server: Server) -> list[int]:
        return [server.proc.pid] + ([redis_pid] if server.uses_redis and redis_pid else [])

    cpu0 = [sum(tree_cpu_seconds(pid) for pid in pids(server)) for _, server in sides]
    switches0 = [tree_switches(server.proc.pid) for _, server in sides]
    results: list[LoadResult | None] = [None, None]

    def load(index: int) -> None:
        case, server = sides[index]
        results[index] = _load(case, server.port, DURATION, CONCURRENCY // 2, part=(index, 2))

    threads = [threading.Thread(target=load, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for (case, server), before, switched, result in zip(
        sides, cpu0, switches0, results, strict=True
    ):
        case.round_cpu.append(sum(tree_cpu_seconds(pid) for pid in pids(server)) - before)
        case.switches += tree_switches(server.proc.pid) - switched
        case.rounds.append(result)


def _load(
    case: Case,
    port: int,
    duration: float,
    concurrency: int = CONCURRENCY,
    part: tuple[int, int] = (0, 1),
) -> LoadResult:
    """Load ``case``; ``part`` (i, n): the i-th of n cases loaded at once, which takes
    the i-th n-th of the requests when there are enough (message posts: the two
    sides of a pair post on different tickets)."""
    requests = case.requests
    index, parts = part
    if len(requests) >= parts * concurrency:
        size = len(requests) // parts
        requests = requests[index * size : (index + 1) * size]
    per_thread = max(1, len(requests) // concurrency)

    def request_for(thread: int, n: int) -> bytes:
        # Each thread keeps to its own slice (message posts: its own tickets, so
        # threads never wait on each other's row locks).
        return requests[(thread * per_thread + n % per_thread) % len(requests)]

    return run_load(
        "127.0.0.1",
        port,
        request_for,
        expect=case.expect,
        duration=duration,
        concurrency=concurrency,
    )


def count_redis_commands(
    case: Case, endpoint: str, server: Server, redis_url: str, seconds: float
) -> RedisCount:
    """Send requests of ``case`` one after the other on one connection for ``seconds``
    while a ``MONITOR`` connection lists what Redis receives, and count per request
    the commands clients sent, not those the limits' script runs inside Redis. After
    each answer this process sends an ``ECHO`` marker on a connection of its own
    (left out of the count): what Redis received between two markers is one
    request's. A command is at most one round trip (a pipelined batch would count
    once per command), so this bounds them from above."""
    import threading

    import redis

    client = redis.Redis.from_url(redis_url)
    prefix = f"ticketing-throughput-{time.time_ns()}-"
    done = f"{prefix}done"
    count = RedisCount(endpoint, 0)
    conn = RawConnection("127.0.0.1", server.port)
    try:
        with client.monitor() as monitor:
            # The markers' connection (the monitor holds the pool's first one): its
            # HELLO and this CLIENT INFO are left out with the markers.
            own = client.client_info()["addr"]

            def read() -> None:  # while the requests run: Redis buffers nothing for long
                sent = 0
                while True:
                    command = monitor.next_command()
                    text = command["command"]
                    if text.startswith(("echo ", "ECHO ")) and prefix in text:
                        if done in text:
                            return
                        count.per_request.append(sent)
                        sent = 0
                    elif command["client_type"] == "lua":
                        count.inside_script += 1
                    elif f"{command['client_address']}:{command['client_port']}" != own:
                        count.commands[text.split(" ", 1)[0].upper()] += 1
                        sent += 1

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            stop_at, i = time.monotonic() + seconds, 0
            while time.monotonic() < stop_at:
                status, body = conn.request(case.requests[i % len(case.requests)])
                if status != case.expect:
                    raise RuntimeError(f"{case.name}: HTTP {status}: {body[:300]!r}")
                client.echo(f"{prefix}{i}")  # the end of request i's commands
                i += 1
            client.echo(done)
            reader.join(60)
            count.requests = i
    finally:
        conn.close()
        client.close()
    return count


def pairs(all_cases: list[Case]) -> list[Pair]:
    """The monitor on and off for each endpoint, and the list at 100k and 1k tickets,
    as copies of the sequential cases (their figures are kept apart)."""
    by_name = {case.name: case for case in all_cases}

    def copy(name: str) -> Case:
        case = by_name[name]
        return Case(case.name, case.server, case.requests, case.expect, case.ceiling)

    found = [Pair(copy(f"{endpoint}, {ON}"), copy(f"{endpoint}, {OFF}")) for endpoint in ENDPOINTS]
    found.append(Pair(copy(f"list tickets, {ON}"), copy(LIST_SMALL)))
    return found


def main(argv: list[str]) -> int:
    from tests.harness import start_postgres, start_redis

    profile_dir = None
    if argv[:1] == ["--profile"] and len(argv) == 2:
        profile_dir = Path(argv[1]).resolve()
        profile_dir.mkdir(parents=True, exist_ok=True)
    elif argv:
        say("usage: python -m benchmarks.ticketing_throughput [--profile DIR]")
        return 2
    started = time.monotonic()
    with workdir("ticketing-bench") as tmp, ProcessGroup() as procs:
        postgres = start_postgres()
        try:
            postgres.execute("CREATE DATABASE ticketing")
            postgres.execute("CREATE DATABASE ticketing_small")
            db_url, small_db_url = postgres.url("ticketing"), postgres.url("ticketing_small")
            partner_id, key, ticket_ids = prepare_database(db_url, TICKETS)
            _, small_key, _ = prepare_database(small_db_url, SMALL_TICKETS)
            redis = start_redis(tmp)
            procs.add(redis.process)
            say(
                f"[{time.monotonic() - started:4.0f} s] {TICKETS:,} and {SMALL_TICKETS:,} "
                f"tickets stored; starting gunicorn x4 ({WORKERS} workers x {THREADS} "
                f"threads each)"
            )
            servers = start_servers(
                tmp,
                procs,
                db_url,
                small_db_url,
                redis.url,
                partner_id,
                only=("secure",) if profile_dir else None,
            )
            all_cases = cases(key, ticket_ids, small_key)
            if profile_dir:
                return profile(all_cases, servers, profile_dir)
            all_pairs = pairs(all_cases)
            say(
                f"[{time.monotonic() - started:4.0f} s] {len(all_cases)} cases and "
                f"{len(all_pairs)} pairs x {ROUNDS} rounds x {DURATION:g} s, {CONCURRENCY} "
                f"client connections"
            )
            client_cpu0 = time.process_time()
            load_started = time.monotonic()
            for n in range(ROUNDS):  # every other round in reverse: drift hits all alike
                for case in all_cases if n % 2 == 0 else all_cases[::-1]:
                    run_case(case, servers[case.server], redis.process.pid)
                for pair in all_pairs if n % 2 == 0 else all_pairs[::-1]:
                    run_pair(pair, servers, redis.process.pid)
            client_share = (time.process_time() - client_cpu0) / (time.monotonic() - load_started)
            by_name = {case.name: case for case in all_cases}
            redis_counts = [
                count_redis_commands(
                    by_name[f"{endpoint}, {ON}"],
                    endpoint,
                    servers["secure"],
                    redis.url,
                    REDIS_COUNT_SECONDS,
                )
                for endpoint in ENDPOINTS
            ]
            for server in servers.values():
                server.workers = [memory_mb(pid) for pid in descendants(server.proc.pid)]
            say(f"[{time.monotonic() - started:4.0f} s] done")
        finally:
            postgres.cleanup()
    return report(all_cases, all_pairs, servers, client_share, redis_counts)


# ---------------------------------------------------------------- profile

#: Where a sample's innermost frames are, by the first match from the leaf up.
_AREAS = (
    ("security monitor (ticketing/security, redis-py)", ("ticketing/security/", "redis/")),
    ("SQLAlchemy ORM", ("sqlalchemy/orm/",)),
    ("SQLAlchemy Core, psycopg", ("sqlalchemy/", "psycopg/")),
    (
        "marshmallow, webargs, flask-smorest",
        ("marshmallow/", "webargs/", "flask_smorest/", "ticketing/api/dumping.py"),
    ),
    ("metrics (prometheus)", ("prometheus_client/", "prometheus_flask_exporter/")),
    ("ticketing (other)", ("ticketing/",)),
    ("Flask, Werkzeug", ("flask/", "werkzeug/", "blinker/")),
    ("gunicorn", ("gunicorn/",)),
)


def profile(all_cases: list[Case], servers: dict[str, Server], directory: Path) -> int:
    """Sample the secure server's workers under create and message load."""
    server = servers["secure"]
    by_name = {c.name: c for c in all_cases}
    for endpoint in POST_ROUTES:
        case = by_name[f"{endpoint}, {ON}"]
        out = directory / f"{endpoint.replace(' ', '-')}.txt"
        spy = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--gil",
                "--subprocesses",
                "--nonblocking",
                "--rate",
                "200",
                "--format",
                "raw",
                "-o",
                str(out),
                "-d",
                str(int(PROFILE_SECONDS) + 2),
                "-p",
                str(server.proc.pid),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0)
        run_case(case, server, None, duration=PROFILE_SECONDS)
        _, err = spy.communicate(timeout=120)
        if spy.returncode or not out.exists():
            say(f"py-spy failed for {endpoint}: {err[-2000:]}")
            return 1
        say(
            f"\n{endpoint} ({case.rounds[-1].throughput:.0f} req/s while sampled; "
            f"samples holding the GIL, by innermost area) -> {out}"
        )
        say(summarize(out))
    return 0


def summarize(path: Path) -> str:
    areas: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        for frame in reversed(frames):
            where = next((name for name, parts in _AREAS if any(p in frame for p in parts)), None)
            if where:
                areas[where] += int(count)
                break
        else:
            areas["other (interpreter, stdlib)"] += int(count)
        for frame in set(frames):
            if "ticketing/" in frame and "site-packages" not in frame:
                functions[frame.split(" (")[0] + " " + frame.rsplit("/", 1)[-1].split(":")[0]] += (
                    int(count)
                )
    rows = [[name, f"{n / total * 100:.1f}%"] for name, n in areas.most_common()]
    text = table(["area", "share"], rows)
    rows = [[name, f"{n / total * 100:.1f}%"] for name, n in functions.most_common(18)]
    return text + "\n\n" + table(["ticketing function (inclusive)", "share"], rows)


# ----------------------------------------------------------------- report


def _per_round(numerator: Case, denominator: Case, value) -> Spread:
    return Spread(
        [
            value(numerator, n) / value(denominator, n)
            for n in range(min(len(numerator.rounds), len(denominator.rounds)))
            if value(denominator, n)
        ]
    )


def _throughput(case: Case, n: int) -> float:
    return case.rounds[n].throughput


def _p99(case: Case, n: int) -> float:
    return case.rounds[n].p(99)


def _cpu_cost(on: Case, off: Case) -> Spread:
    """1 - CPU per request off / on, per round."""
    return Spread(
        [
            1 - off.round_cpu_per_request(n) / on.round_cpu_per_request(n)
            for n in range(min(len(on.rounds), len(off.rounds)))
        ]
    )


def report(
    all_cases: list[Case],
    all_pairs: list[Pair],
    servers: dict[str, Server],
    client_share: float,
    redis_counts: list[RedisCount],
) -> int:
    totals = {case.name: case.total for case in all_cases}
    by_name = {case.name: case for case in all_cases}
    say()
    say(
        f"Throughput and latency ({CONCURRENCY} connections, {ROUNDS} rounds x {DURATION:g} s "
        f"per case; the load generator used {client_share * 100:.0f}% of a core; CPU: the "
        f"server's workers, and Redis for the servers with limits on)"
    )
    rows = []
    for case in all_cases:
        t = totals[case.name]
        ratio = (
            f"{t.throughput / totals[case.ceiling].throughput * 100:.0f}%"
            if case.ceiling
            else "ceiling"
        )
        floor = next((FLOORS[e] for e in FLOORS if case.name.startswith(e + ",")), None)
        of_floor = (
            _per_round(case, by_name[floor], _throughput).pct(0)
            if floor
            else "floor"
            if case.name in FLOORS.values()
            else ""
        )
        others = sum(c for s, c in t.statuses.items() if s != case.expect) + t.errors
        rows.append(
            [
                case.name,
                f"{t.throughput:.0f}",
                ms(t.p(50)),
                ms(t.p(99)),
                f"{case.cpu_per_request * 1000:.2f}",
                ratio,
                of_floor,
                others,
            ]
        )
    say(
        table(
            [
                "case",
                "req/s",
                "p50 ms",
                "p99 ms",
                "CPU ms/req",
                "of bare",
                "of floor, median (range)",
                "failed",
            ],
            rows,
        )
    )
    failures = [
        (c.name, totals[c.name].first_error) for c in all_cases if totals[c.name].first_error
    ]
    for name, error in failures:
        say(f"  first failure in {name}: {error}")

    say()
    say(
        f"Cost of scanning + rate limiting: 1 - CPU per request off / on (the server's workers, "
        f"plus Redis when on). Paired: the servers with the monitor on and off loaded at the "
        f"same time, {CONCURRENCY // 2} connections each, so the machine's other load hits "
        f"both alike; in turn: from the slices above, one after the other. Median (range) "
        f"over {ROUNDS} rounds; waits: voluntary context switches of all the server's threads "
        f"per request (a thread blocked on a socket, a lock or the GIL), paired"
    )
    paired = {pair.first.name: pair for pair in all_pairs}
    costs: dict[str, Spread] = {}
    rows = []
    for endpoint in ENDPOINTS:
        pair = paired[f"{endpoint}, {ON}"]
        on, off = pair.first, pair.second
        costs[endpoint] = _cpu_cost(on, off)
        seq_on, seq_off = by_name[f"{endpoint}, {ON}"], by_name[f"{endpoint}, {OFF}"]
        direct = Spread(
            [
                1 - seq_on.rounds[n].throughput / seq_off.rounds[n].throughput
                for n in range(ROUNDS)
                if seq_off.rounds[n].throughput
            ]
        )
        rows.append(
            [
                endpoint,
                f"{off.cpu_per_request * 1000:.2f}",
                f"{on.cpu_per_request * 1000:.2f}",
                f"{(on.cpu_per_request - off.cpu_per_request) * 1000:+.2f}",
                costs[endpoint].pct(),
                _cpu_cost(seq_on, seq_off).pct(),
                direct.pct(),
                f"{off.switches_per_request:.1f} -> {on.switches_per_request:.1f}",
            ]
        )
    say(
        table(
            [
                "endpoint",
                "CPU ms off",
                "CPU ms on",
                "added ms",
                "paired, by CPU",
                "in turn, by CPU",
                "in turn, req/s lost",
                "waits/req off -> on",
            ],
            rows,
        )
    )

    say()
    say(
        f"Redis commands sent per request with scanning + limits on ({REDIS_COUNT_SECONDS:g} s "
        f"of requests per route, one after the other, counted by a MONITOR connection; "
        f"commands the limits' script runs inside Redis are no round trip and are listed apart)"
    )
    say(
        table(
            [
                "endpoint",
                "requests",
                "commands sent",
                "mean",
                "most",
                "requests with more than 1",
                "by command",
                "in script",
            ],
            [
                [
                    c.endpoint,
                    c.requests,
                    sum(c.per_request),
                    f"{c.mean:.4f}",
                    max(c.per_request, default=0),
                    c.over_one,
                    ", ".join(f"{name} {n}" for name, n in c.commands.most_common()) or "-",
                    c.inside_script,
                ]
                for c in redis_counts
            ],
        )
    )

    big, small = all_pairs[-1].first, all_pairs[-1].second
    say()
    say(
        f"List latency at {TICKETS:,} and {SMALL_TICKETS:,} tickets, paired (loaded at the "
        f"same time, {CONCURRENCY // 2} connections each)"
    )
    rows = []
    for case in (big, small):
        t = case.total
        rows.append(
            [
                case.name,
                f"{t.throughput:.0f}",
                ms(t.p(50)),
                ms(t.p(90)),
                ms(t.p(99)),
                f"{case.cpu_per_request * 1000:.2f}",
            ]
        )
    say(table(["case", "req/s", "p50 ms", "p90 ms", "p99 ms", "CPU ms/req"], rows))

    say()
    say("Gunicorn worker memory after the run")
    rows = []
    for server in servers.values():
        for n, worker in enumerate(server.workers, 1):
            rows.append(
                [
                    f"{server.name} worker {n}",
                    f"{worker.get('rss', 0):.1f}",
                    f"{worker.get('pss', 0):.1f}",
                ]
            )
    say(table(["server", "RSS MiB", "PSS MiB"], rows))

    say()
    for endpoint, floor in FLOORS.items():
        on, off = by_name[f"{endpoint}, {ON}"], by_name[f"{endpoint}, {OFF}"]
        of_floor = _per_round(on, by_name[floor], _throughput)
        say(
            verdict(
                f"{endpoint} at least {TARGET_OF_FLOOR:.0%} of its floor (scanning and limits on)",
                of_floor.median >= TARGET_OF_FLOOR,
                f"median {of_floor.pct(0)} over {ROUNDS} rounds; {totals[on.name].throughput:.0f}"
                f" vs {totals[floor].throughput:.0f} req/s; with them off "
                f"{_per_round(off, by_name[floor], _throughput).pct(0)}; CPU per request "
                f"{on.cpu_per_request * 1000:.2f} vs {by_name[floor].cpu_per_request * 1000:.2f}"
                f" ms",
            )
        )
    worst = max(POST_ROUTES, key=lambda e: costs[e].median)
    say(
        verdict(
            f"scanning plus rate limiting at most {TARGET_SECURITY:.0%} of the CPU per "
            f"request on every POST route (paired, median of {ROUNDS} rounds)",
            all(costs[e].median <= TARGET_SECURITY for e in POST_ROUTES),
            "paired, median (range) over rounds, Redis included: "
            + ", ".join(f"{e} {costs[e].pct()}" for e in POST_ROUTES)
            + f" (worst: {worst}); list tickets {costs['list tickets'].pct()}",
        )
    )
    say(
        verdict(
            f"at most {TARGET_REDIS_TRIPS:g} Redis round trip per request (scanning and limits on)",
            all(c.mean <= TARGET_REDIS_TRIPS for c in redis_counts),
            "commands sent to Redis per request (an upper bound of the round trips), mean "
            "over "
            + ", ".join(
                f"{c.requests} {c.endpoint} {c.mean:.4f} (most {max(c.per_request, default=0)})"
                for c in redis_counts
            ),
        )
    )
    growth = _per_round(big, small, _p99)
    pooled = big.total.p(99) / small.total.p(99)
    seq_big, seq_small = totals[f"list tickets, {ON}"], totals[LIST_SMALL]
    say(
        verdict(
            f"list p99 at {TICKETS // 1000}k tickets at most {TARGET_LIST_GROWTH:g}x its "
            f"p99 at {SMALL_TICKETS // 1000}k",
            growth.median <= TARGET_LIST_GROWTH,
            f"paired, median (range) of the rounds' p99 ratios {growth.times()}; all rounds "
            f"pooled: {ms(big.total.p(99))} vs {ms(small.total.p(99))} ms, {pooled:.2f}x; "
            f"p50 {ms(big.total.p(50))} vs "
            f"{ms(small.total.p(50))} ms; in turn: p99 {ms(seq_big.p(99))} vs "
            f"{ms(seq_small.p(99))} ms, {seq_big.p(99) / seq_small.p(99):.2f}x",
        )
    )
    ticketing_workers = [w for s in servers.values() if s.name != "bare" for w in s.workers]
    rss = max((w.get("rss", 0) for w in ticketing_workers), default=float("nan"))
    say(
        verdict(
            "a ticketing worker under 120 MB resident",
            rss < TARGET_WORKER_MB,
            f"largest worker RSS {rss:.1f} MiB of {len(ticketing_workers)}",
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
