"""The status page under 200 concurrent clients, next to a bare Flask JSON GET.

    python -m benchmarks.status_page

A private PostgreSQL holds the migrated ticketing schema with a status page's
worth of history: one published incident open (three updates), 300 resolved
over the last 90 days on the four components, two maintenance windows ahead
and ten past. Two gunicorn servers run with the ticket service's settings
(``ticketing/runtime/gunicorn.conf.py``: 2 workers x 8 threads, gthread):

- the ticket service (rate limits off: 200 clients from one address would be
  refused after 100 requests a minute, as they should; the outbox thread off);
- ``benchmarks/_bare_app.py``: ``GET /bare`` answers a small JSON document,
  nothing else: gunicorn, Werkzeug and Flask (the baseline).

A load generator in this process (200 threads, each on its own kept-alive
connection) loads ``GET /status``, ``GET /api/v2/summary.json`` and
``GET /bare`` in turn, in slices of a few seconds over several rounds (the
order reversed every other round), so drifting machine load hits them alike.
Printed: throughput, p50/p99 latency, and the server's CPU seconds per answered
request (master and workers) as a ratio to the bare GET's.

Targets, as ratios to the bare GET measured in the same run (the machine is
shared: absolute latencies say more about the neighbours than about the page):
p99 of /status and of summary.json under 200 concurrent clients at most 2x
the bare GET's (the page holds up when every partner looks at once), and their
CPU per request at most 3x (the page's data is read and rendered once per
``status.cache_ttl`` per process; see NOTES.md).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from ._support import (
    ROOT,
    ProcessGroup,
    build_request,
    http_ready,
    ms,
    python_env,
    run_load,
    say,
    table,
    tree_cpu_seconds,
    verdict,
    workdir,
)

CONCURRENCY = 200
SLICE = 4.0
ROUNDS = 4
WORKERS, THREADS = 2, 8
GUNICORN_CONF = ROOT / "ticketing" / "runtime" / "gunicorn.conf.py"
P99_RATIO_TARGET = 2.0
CPU_RATIO_TARGET = 3.0


@dataclass
class Case:
    name: str
    server: str
    path: str
    latencies: list[float] = field(default_factory=list)
    answered: int = 0
    ok: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    other: dict[int, int] = field(default_factory=dict)


def seed(db_url: str) -> None:
    from flask_migrate import upgrade

    from ticketing import create_app
    from ticketing.db import db
    from ticketing.models import Staff
    from ticketing.status.models import Incident, IncidentUpdate, Maintenance

    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": db_url,
            "TICKETING": {"outbox": {"worker": False}, "live": {"enabled": False}},
        }
    )
    components = ["api", "transactions", "energy-pool", "support"]
    now = datetime.now(UTC).replace(tzinfo=None)
    with app.app_context():
        upgrade()
        staff = Staff(name="Bench", email="bench@example.org", role="agent")
        db.session.add(staff)
        db.session.flush()
        for n in range(300):
            start = now - timedelta(hours=7 * n + 5)
            incident = Incident(
                title=f"Past incident {n}",
                status="resolved",
                impact=("minor", "major", "critical")[n % 3],
                components=[components[n % 4]],
                source="alert",
                published_at=start,
                created_at=start,
                updated_at=start + timedelta(hours=1),
                resolved_at=start + timedelta(hours=1),
            )
            db.session.add(incident)
            db.session.flush()
            for status, minutes in (("investigating", 0), ("identified", 20), ("resolved", 60)):
                db.session.add(
                    IncidentUpdate(
                        incident_id=incident.id,
                        status=status,
                        body=f"{status}: what we know so far about incident {n}.",
                        created_at=start + timedelta(minutes=minutes),
                    )
                )
        active = Incident(
            title="Energy purchases may fail",
            status="identified",
            impact="major",
            components=["energy-pool", "transactions"],
            source="alert",
            published_at=now - timedelta(minutes=30),
            created_at=now - timedelta(minutes=31),
            updated_at=now - timedelta(minutes=5),
        )
        db.session.add(active)
        db.session.flush()
        for status, minutes in (("investigating", 30), ("identified", 15), ("identified", 5)):
            db.session.add(
                IncidentUpdate(
                    incident_id=active.id,
                    status=status,
                    body="The shared energy pool is nearly empty; we are refilling it.",
                    created_at=now - timedelta(minutes=minutes),
                )
            )
        for n in range(12):
            start = now + timedelta(days=2 + n) if n < 2 else now - timedelta(days=7 * n)
            db.session.add(
                Maintenance(
                    title=f"Maintenance {n}",
                    body="Purchases may be slow.",
                    components=[components[n % 4]],
                    starts_at=start,
                    ends_at=start + timedelta(hours=2),
                    status="scheduled" if n < 2 else "completed",
                    created_at=now - timedelta(days=100),
                    updated_at=now - timedelta(days=1),
                    finished_at=None if n < 2 else start + timedelta(hours=2),
                )
            )
        db.session.commit()
        db.engine.dispose()


def start(tmp: Path, procs: ProcessGroup, db_url: str) -> dict[str, tuple[int, int]]:
    from tests.harness import free_port

    config = tmp / "ticketing.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "ratelimits": {"enabled": False},
                "outbox": {"worker": False},
                "live": {"enabled": False},
            }
        )
    )
    servers = {}
    for name, app in (("bare", "benchmarks._bare_app:app"), ("status", "ticketing:create_app()")):
        port = free_port()
        metrics = tmp / f"metrics-{name}"
        metrics.mkdir()
        env = python_env(
            TICKETING_BIND=f"127.0.0.1:{port}",
            TICKETING_WORKERS=str(WORKERS),
            TICKETING_THREADS=str(THREADS),
            PROMETHEUS_MULTIPROC_DIR=str(metrics),
            TICKETING_DATABASE_URL=db_url,
            TICKETING_CONFIG=str(config),
            BARE_PARTNER_ID="1",
        )
        cmd = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), app]
        proc = procs.start(
            cmd,
            tmp,
            name=f"gunicorn-{name}",
            env=env,
            ready=http_ready(f"http://127.0.0.1:{port}/healthz"),
            timeout=90,
        )
        servers[name] = (port, proc.pid)
    return servers


def load(case: Case, servers: dict[str, tuple[int, int]]) -> None:
    port, pid = servers[case.server]
    request = build_request("GET", case.path, f"127.0.0.1:{port}")
    before = tree_cpu_seconds(pid)
    result = run_load(
        "127.0.0.1",
        port,
        lambda _thread, _n: request,
        expect=200,
        duration=SLICE,
        concurrency=CONCURRENCY,
    )
    case.cpu += tree_cpu_seconds(pid) - before
    case.latencies += result.latencies
    case.answered += result.answered
    case.ok += result.ok
    case.seconds += result.duration
    for status, count in result.statuses.items():
        if status != 200:
            case.other[status] = case.other.get(status, 0) + count


def main() -> int:
    from tests.harness import start_postgres

    from ._support import percentile

    cases = [
        Case("bare JSON GET (baseline)", "bare", "/bare"),
        Case("GET /status (HTML)", "status", "/status"),
        Case("GET /api/v2/summary.json", "status", "/api/v2/summary.json"),
    ]
    postgres = start_postgres()
    try:
        db_url = postgres.create_database()
        seed(db_url)
        with workdir("status-page") as tmp, ProcessGroup() as procs:
            servers = start(tmp, procs, db_url)
            for case in cases:  # warm: each worker loads its templates and its model
                load_case = Case(case.name, case.server, case.path)
                load(load_case, servers)
            for round_ in range(ROUNDS):
                for case in cases if round_ % 2 == 0 else cases[::-1]:
                    load(case, servers)
    finally:
        postgres.cleanup()

    base = cases[0]
    base_cpu = base.cpu / max(base.answered, 1)
    rows = []
    for case in cases:
        cpu = case.cpu / max(case.answered, 1)
        rows.append(
            [
                case.name,
                f"{case.ok / case.seconds:.0f}/s",
                ms(percentile(case.latencies, 50)),
                ms(percentile(case.latencies, 99)),
                f"{cpu * 1000:.2f} ms",
                f"{cpu / base_cpu:.2f}x",
                ", ".join(f"{s}: {n}" for s, n in case.other.items()) or "-",
            ]
        )
    say(
        f"{CONCURRENCY} concurrent clients (keep-alive), {ROUNDS} rounds of {SLICE:.0f} s "
        f"per case; gunicorn {WORKERS} workers x {THREADS} threads; PostgreSQL; 300 past "
        "incidents, one open, 12 maintenance windows"
    )
    say(
        table(
            ["case", "answers", "p50 ms", "p99 ms", "CPU/request", "vs bare", "not 200"],
            rows,
        )
    )
    ok = True
    for case in cases[1:]:
        p99 = percentile(case.latencies, 99)
        p99_ratio = p99 / percentile(base.latencies, 99)
        ratio = (case.cpu / max(case.answered, 1)) / base_cpu
        met_p99 = p99_ratio <= P99_RATIO_TARGET and not case.other
        met_cpu = ratio <= CPU_RATIO_TARGET
        ok = ok and met_p99 and met_cpu
        say(
            verdict(
                f"{case.name} p99 at {CONCURRENCY} clients at most "
                f"{P99_RATIO_TARGET:.0f}x the bare JSON GET's",
                met_p99,
                f"{p99_ratio:.2f}x, {ms(p99)} ms",
            )
        )
        say(
            verdict(
                f"{case.name} CPU per request at most {CPU_RATIO_TARGET:.0f}x the bare JSON GET",
                met_cpu,
                f"{ratio:.2f}x",
            )
        )
    return 0


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    say(f"(took {time.monotonic() - started:.0f} s)")
    sys.exit(code)
