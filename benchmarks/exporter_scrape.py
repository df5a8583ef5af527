"""What a scrape costs: partnerwatch-exporter next to query-exporter 5.0.2, same queries.

    python -m benchmarks.exporter_scrape

A platform database of 1,000 partners and 1,000,000 transactions (spread over
the last week) is loaded into SQLite and into PostgreSQL (a private cluster).
Both exporters get the platform queries of the shipped configuration
(``exporter/partnerwatch.yml``: energy pool, transactions by status, active
partners), query-exporter in its own virtualenv (``benchmarks/.venv-peers``),
in its two ways of running them:

- *queries at scrape*: no ``interval``, query-exporter's default: every
  scrape runs the queries;
- *same intervals*: each query on our configured interval, like ours.

Measured, one exporter at a time:

1. scrape latency p50/p99 over back-to-back scrapes (a kept-alive connection,
   Prometheus's Accept header) and the exporter's CPU time per scrape over
   them (``/proc/<pid>/stat``, all threads). The same for ours and the
   query-at-scrape query-exporter on a small database (1,000 transactions),
   so "whatever the database size" is measured rather than assumed;

and then all at once, like a deployment with two Prometheus replicas:

2. two scrapers per exporter, each waiting a random 1-5 s between scrapes,
   for a minute: the exporter's CPU time per scrape (scheduled queries
   included) and the database queries it issued in that minute (PostgreSQL:
   counted in the server's statement log by application name; SQLite: the
   exporters' own counts, our ``/status`` runs and query-exporter's
   ``queries_total``);

3. resident memory of each exporter at the end.

Targets: scrape p99 under 10 ms whatever the database size; less CPU per
scrape than query-exporter for the same metrics; the exporter under 60 MB.
"""

from __future__ import annotations

import random
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from sqlalchemy import create_engine, event, text

from sharedconfig import parse_duration

from ._support import (
    ROOT,
    ProcessGroup,
    Scraper,
    cpu_seconds,
    memory_mb,
    ms,
    peers_venv,
    percentile,
    python_env,
    say,
    table,
    tcp_ready,
    verdict,
    wait_until,
    workdir,
)

PARTNERS = 1_000
TRANSACTIONS = 1_000_000
SMALL_TRANSACTIONS = 1_000
QUERIES = ("energy_pool", "transactions", "active_partners")
LATENCY_SCRAPES = 300  # back-to-back scrapes per exporter ...
LATENCY_BUDGET = 5.0  # ... or fewer when they take longer than this in all
LATENCY_MIN_SCRAPES = 10
WINDOW = 60.0  # the two-scraper minute
SCRAPE_GAP = (1.0, 5.0)
TARGET_P99 = 0.010
TARGET_RSS_MB = 60.0
SHIPPED = ROOT / "exporter" / "partnerwatch.yml"

OURS = "partnerwatch-exporter"
OURS_SHIPPED = "partnerwatch-exporter, shipped config"
QE_SCRAPE = "query-exporter, queries at scrape"
QE_INTERVAL = "query-exporter, same intervals"


# ------------------------------------------------------------------- data


def load_platform(url: str, transactions: int) -> float:
    """Create the platform tables (the demo platform's schema, with its indexes)
    and fill them in SQL; returns the seconds it took."""
    from demo.platform import metadata
    from demo.platform import transactions as transactions_table

    start = time.monotonic()
    engine = create_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        # A scratch file: no journal, no syncing while it is filled.
        @event.listens_for(engine, "connect")
        def _fast(dbapi_connection, _record):
            dbapi_connection.execute("PRAGMA journal_mode=OFF")
            dbapi_connection.execute("PRAGMA synchronous=OFF")

    metadata.create_all(engine)
    indexes = list(transactions_table.indexes)
    with engine.begin() as conn:  # indexes are built once, after the rows are in
        for index in indexes:
            index.drop(conn)
    if sqlite:
        numbers = (
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {count}) "
        )
        source = "FROM n"
        now = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
        ago = "strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || CAST(({secs}) AS TEXT) || ' seconds')"
    else:
        numbers = ""
        source = "FROM generate_series(1, {count}) AS n(x)"
        now = "(now() AT TIME ZONE 'UTC')"
        ago = "(now() AT TIME ZONE 'UTC') - make_interval(secs => {secs})"
    with engine.begin() as conn:
        conn.execute(
            text(
                numbers.format(count=PARTNERS)
                + "INSERT INTO partners (id, name, status, created_at) "
                + "SELECT x, 'partner ' || x, "
                + "CASE WHEN x % 20 = 0 THEN 'suspended' ELSE 'active' END, "
                + now
                + " "
                + source.format(count=PARTNERS)
            )
        )
        conn.execute(
            text(
                "INSERT INTO energy_pools (name, capacity_units, available_units, updated_at) "
                f"VALUES ('main', 100000, 62000, {now}), ('reserve', 20000, 15000, {now}), "
                f"('north', 50000, 9000, {now})"
            )
        )
        # One transaction every 0.6 s over the last week (1,500 in the last 15
        # minutes); 2 % failed, 1 % pending, from 1,000 partners.
        conn.execute(
            text(
                numbers.format(count=transactions)
                + "INSERT INTO transactions (id, partner_id, status, amount_units, created_at) "
                + f"SELECT x, 1 + ((x % {PARTNERS}) * 7919) % {PARTNERS}, "
                + "CASE WHEN x % 50 = 0 THEN 'failed' WHEN x % 97 = 0 THEN 'pending' "
                + "ELSE 'completed' END, (x % 100) + 0.5, "
                + ago.format(secs=f"({transactions} - x) * 0.6")
                + " "
                + source.format(count=transactions)
            )
        )
        for index in indexes:
            index.create(conn)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    engine.dispose()
    return time.monotonic() - start


# ---------------------------------------------------------------- configs


def shipped_queries() -> dict[str, dict]:
    queries = yaml.safe_load(SHIPPED.read_text())["queries"]
    return {name: queries[name] for name in QUERIES}


def our_config(path: Path, port: int, url: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "exporter": {"listen": f"127.0.0.1:{port}", "staleness": "60s"},
                "databases": {"platform": {"url": url}},
                "queries": shipped_queries(),
            },
            sort_keys=False,
        )
    )
    return path


def _time_expression(dialect: str, seconds_ago: float) -> str:
    """What query-exporter users write instead of our ``:since`` parameters."""
    if dialect == "sqlite":
        return (
            f"strftime('%Y-%m-%d %H:%M:%f', 'now', '-{seconds_ago:g} seconds')"
            if seconds_ago
            else "strftime('%Y-%m-%d %H:%M:%f', 'now')"
        )
    return (
        f"((now() AT TIME ZONE 'UTC') - interval '{seconds_ago:g} seconds')"
        if seconds_ago
        else "(now() AT TIME ZONE 'UTC')"
    )


def query_exporter_config(path: Path, url: str, dialect: str, intervals: bool) -> Path:
    """The same queries for query-exporter: each wrapped so that its columns carry
    the metric names (query-exporter's convention), time parameters written in
    the database's own SQL; with ``intervals`` each keeps our interval."""
    metrics, queries = {}, {}
    for name, query in shipped_queries().items():
        sql = query["sql"]
        for param, duration in {"now": 0, **query.get("params", {})}.items():
            expression = _time_expression(dialect, parse_duration(duration))
            sql = re.sub(rf"(?<!:):{param}\b", expression, sql)
        columns, labels = [], []
        for spec in query["metrics"]:
            metric = {"type": spec.get("type", "gauge"), "description": spec["help"]}
            if spec.get("labels"):
                metric["labels"] = list(spec["labels"])
            metrics[spec["name"]] = metric
            columns.append(f"{spec['value']} AS {spec['name']}")
            labels += [label for label in spec.get("labels", []) if label not in labels]
        entry = {
            "databases": ["platform"],
            "metrics": [m["name"] for m in query["metrics"]],
            "sql": f"SELECT {', '.join(labels + columns)} FROM (\n{sql.strip()}\n) AS q",
            "timeout": round(parse_duration(query.get("timeout", "5s")), 1),
        }
        if intervals:
            entry["interval"] = int(parse_duration(query.get("interval", "15s")))
        queries[name] = entry
    path.write_text(
        yaml.safe_dump(
            {"databases": {"platform": {"dsn": url}}, "metrics": metrics, "queries": queries},
            sort_keys=False,
        )
    )
    return path


# -------------------------------------------------------------- exporters


@dataclass
class Exporter:
    kind: str
    database: str  # "SQLite" / "PostgreSQL"
    size: int  # transactions
    port: int
    proc: object = None
    app_name: str = ""  # PostgreSQL application_name, to find its statements
    latencies: list[float] = field(default_factory=list)
    latency_cpu: float = 0.0
    latency_note: str = ""
    window_scrapes: int = 0
    window_cpu: float = 0.0
    window_self_count: float = 0.0
    window_logged: int = 0
    memory: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        size = f"{self.size // 1000}k" if self.size < 1_000_000 else f"{self.size // 1_000_000}M"
        return f"{self.database} {size}"

    @property
    def name(self) -> str:
        return f"{self.kind} / {self.label}"

    def scraper(self) -> Scraper:
        return Scraper("127.0.0.1", self.port)

    def self_count(self) -> float:
        """SQL queries run so far, by the exporter's own account."""
        if self.kind in (OURS, OURS_SHIPPED):
            import requests

            status = requests.get(f"http://127.0.0.1:{self.port}/status", timeout=30).json()
            return float(
                sum(
                    c["runs"]
                    for name, c in status["collectors"].items()
                    if name.startswith("query:")
                )
            )
        scraper = self.scraper()
        _, body, _ = scraper.get()
        scraper.close()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in body.decode().splitlines()
            if line.startswith("queries_total{")
        )


def ready(exporter: Exporter) -> bool:
    try:
        scraper = exporter.scraper()
        status, body, _ = scraper.get()
        scraper.close()
    except OSError:
        return False
    return (
        status == 200
        and b"platform_partners_active" in body
        and b"platform_transactions_total" in body
    )


def measure_latency(exporter: Exporter) -> None:
    """Back-to-back scrapes. Where queries run on a schedule, a loop during which
    one ran is done again (up to three times): this is the cost of a scrape."""
    scheduled = exporter.kind != QE_SCRAPE
    for _attempt in range(3):
        scraper = exporter.scraper()
        for _ in range(3):  # connections, caches
            scraper.get()
        runs0 = exporter.self_count() if scheduled else 0
        latencies: list[float] = []
        cpu0 = cpu_seconds(exporter.proc.pid)
        started = time.monotonic()
        while len(latencies) < LATENCY_SCRAPES:
            status, body, seconds = scraper.get()
            if status != 200:
                raise RuntimeError(f"{exporter.name}: HTTP {status}")
            latencies.append(seconds)
            if (
                time.monotonic() - started > LATENCY_BUDGET
                and len(latencies) >= LATENCY_MIN_SCRAPES
            ):
                break
        cpu = cpu_seconds(exporter.proc.pid) - cpu0
        scraper.close()
        exporter.latencies, exporter.latency_cpu = latencies, cpu
        if not scheduled or exporter.self_count() == runs0:
            return
    exporter.latency_note = "scheduled queries ran during every try"


def two_scraper_window(exporters: list[Exporter], postgres_log: Path | None) -> None:
    """Two scrapers per exporter, 1-5 s apart, all exporters at once for WINDOW seconds."""
    stop = threading.Event()
    counts = {id(e): 0 for e in exporters}
    lock = threading.Lock()
    rng = random.Random(8)
    gaps = {
        (id(e), n): [rng.uniform(*SCRAPE_GAP) for _ in range(200)]
        for e in exporters
        for n in range(2)
    }

    def scrape(exporter: Exporter, n: int) -> None:
        scraper = exporter.scraper()
        pause = gaps[(id(exporter), n)]
        stop.wait(pause[-1] / 2)  # the two replicas are not in step
        i = 0
        while not stop.is_set():
            status, _, _ = scraper.get()
            if status == 200:
                with lock:
                    counts[id(exporter)] += 1
            stop.wait(pause[i % len(pause)])
            i += 1
        scraper.close()

    log_start = postgres_log.stat().st_size if postgres_log else 0
    before = {id(e): (cpu_seconds(e.proc.pid), e.self_count()) for e in exporters}
    threads = [
        threading.Thread(target=scrape, args=(e, n), daemon=True)
        for e in exporters
        for n in range(2)
    ]
    for thread in threads:
        thread.start()
    time.sleep(WINDOW)
    stop.set()
    after = {id(e): (cpu_seconds(e.proc.pid), e.self_count()) for e in exporters}
    # The server log up to now, not up to when the scrapers have finished: the
    # queries logged then are outside the window the own counts cover.
    log_end = postgres_log.stat().st_size if postgres_log else 0
    for thread in threads:
        thread.join(60)
    for e in exporters:
        e.window_scrapes = counts[id(e)]
        e.window_cpu = after[id(e)][0] - before[id(e)][0]
        e.window_self_count = after[id(e)][1] - before[id(e)][1]
    if postgres_log:
        logged = count_logged_queries(postgres_log, log_start, log_end)
        for e in exporters:
            if e.app_name:
                e.window_logged = logged.get(e.app_name, 0)


_LOGGED = re.compile(r"^(?P<app>[^|\n]*)\|.*?LOG:\s+(?:statement|execute [^:]*):\s*(?P<sql>.*)$")
_METRIC_QUERY = re.compile(r"\b(FROM|JOIN)\s+(energy_pools|transactions)\b", re.I)


def count_logged_queries(log: Path, offset: int, end: int) -> dict[str, int]:
    """Metric queries (statements reading the platform tables) by application name,
    logged between the two file offsets."""
    with open(log, "rb") as handle:
        handle.seek(offset)
        lines = handle.read(end - offset).decode(errors="replace").splitlines()
    counts: dict[str, int] = {}
    pending: tuple[str, list[str]] | None = None

    def flush() -> None:
        if pending and _METRIC_QUERY.search(" ".join(pending[1])):
            counts[pending[0]] = counts.get(pending[0], 0) + 1

    for line in lines:
        match = _LOGGED.match(line)
        if match:
            flush()
            pending = (match.group("app"), [match.group("sql")])
        elif "|" in line.split(" ", 1)[0] or "LOG:" in line or "DETAIL:" in line:
            flush()
            pending = None
        elif pending is not None:
            pending[1].append(line)  # the rest of a multi-line statement
    flush()
    return counts


# ------------------------------------------------------------------- run


class Bench:
    """The databases, the exporters and their processes."""

    def __init__(self, tmp: Path, procs: ProcessGroup):
        self.tmp = tmp
        self.procs = procs
        self.exporters: list[Exporter] = []
        self.peers_bin: Path | None = None
        self.phase_started = time.monotonic()

    def phase(self, message: str) -> None:
        now = time.monotonic()
        say(f"[{now - self.phase_started:5.0f} s] {message}")

    def start(
        self, exporter: Exporter, url: str, dialect: str, env: dict[str, str] | None = None
    ) -> Exporter:
        name = f"exporter-{len(self.exporters)}"
        port = exporter.port
        if exporter.kind == OURS:
            config = our_config(self.tmp / f"{name}.yml", port, url)
            cmd = [
                sys.executable,
                "-m",
                "exporter",
                "--config",
                str(config),
                "--log-level",
                "WARNING",
            ]
            exporter.app_name = OURS if dialect == "postgresql" else ""
        elif exporter.kind == OURS_SHIPPED:
            cmd = [
                sys.executable,
                "-m",
                "exporter",
                "--config",
                str(SHIPPED),
                "--log-level",
                "WARNING",
            ]
        else:
            if dialect == "postgresql":
                exporter.app_name = f"query-exporter-{len(self.exporters)}"
                url = f"{url}?application_name={exporter.app_name}"
            config = query_exporter_config(
                self.tmp / f"{name}.yml", url, dialect, intervals=exporter.kind == QE_INTERVAL
            )
            cmd = [
                str(self.peers_bin / "query-exporter"),
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--process-stats",
            ]
        # Started side by side; wait_ready() waits for them.
        exporter.proc = self.procs.start(cmd, self.tmp, name=name, env=python_env(**(env or {})))
        self.exporters.append(exporter)
        return exporter

    def wait_ready(self) -> None:
        """Each exporter listening, then serving the metrics. query-exporter runs its
        queries for every /metrics request: the port is polled, not /metrics."""
        for exporter in self.exporters:
            listening = tcp_ready("127.0.0.1", exporter.port)

            def check(
                exporter: Exporter = exporter, listening: Callable[[], bool] = listening
            ) -> bool:
                if not exporter.proc.running():
                    raise RuntimeError(f"{exporter.name} exited:\n{exporter.proc.log()[-3000:]}")
                return listening() and ready(exporter)

            wait_until(
                check, timeout=120, interval=0.25, message=f"{exporter.name} to serve the metrics"
            )


def main() -> int:
    from tests.harness import HTTPSink, free_port, start_postgres, start_redis
    from tests.harness.platform_data import seed_ticketing

    with workdir("exporter-bench") as tmp, ProcessGroup() as procs, HTTPSink() as api:
        bench = Bench(tmp, procs)
        bench.peers_bin = peers_venv()
        bench.phase(f"loading {PARTNERS:,} partners and {TRANSACTIONS:,} transactions")
        postgres = start_postgres()
        try:
            postgres.execute("CREATE DATABASE platform")
            postgres.execute("CREATE DATABASE ticketing")
            pg_url = postgres.url("platform")
            big, small = tmp / "platform.db", tmp / "platform-small.db"
            took_sqlite = load_platform(f"sqlite:///{big}", TRANSACTIONS)
            took_pg = load_platform(pg_url, TRANSACTIONS)
            load_platform(f"sqlite:///{small}", SMALL_TRANSACTIONS)
            seed_ticketing(postgres.url("ticketing"))
            bench.phase(f"loaded in {took_sqlite:.1f} s (SQLite), {took_pg:.1f} s (PostgreSQL)")
            # Every statement the exporters send, tagged with their application name.
            postgres.execute("ALTER SYSTEM SET log_statement = 'all'")
            postgres.execute("ALTER SYSTEM SET log_line_prefix = '%a|'")
            postgres.execute("SELECT pg_reload_conf()")

            for database, size, url, dialect in [
                ("SQLite", TRANSACTIONS, f"sqlite:///{big}", "sqlite"),
                ("PostgreSQL", TRANSACTIONS, pg_url, "postgresql"),
                ("SQLite", SMALL_TRANSACTIONS, f"sqlite:///{small}", "sqlite"),
            ]:
                kinds = [OURS, QE_SCRAPE] + ([QE_INTERVAL] if size == TRANSACTIONS else [])
                for kind in kinds:
                    bench.start(Exporter(kind, database, size, free_port()), url, dialect)
            # The shipped configuration as deployed: API probe, database and Redis
            # health, and every SQL metric, on PostgreSQL.
            redis = start_redis(tmp)
            procs.add(redis.process)
            port = free_port()
            bench.start(
                Exporter(OURS_SHIPPED, "PostgreSQL", TRANSACTIONS, port),
                "",
                "",
                env={
                    "PLATFORM_DB_URL": pg_url,
                    "TICKETING_DB_URL": postgres.url("ticketing"),
                    "REDIS_URL": redis.url,
                    "PLATFORM_API_URL": api.url,
                    "EXPORTER_LISTEN": f"127.0.0.1:{port}",
                },
            )
            bench.wait_ready()

            bench.phase(
                f"back-to-back scrapes, one exporter at a time (up to "
                f"{LATENCY_SCRAPES}, or {LATENCY_BUDGET:g} s)"
            )
            for exporter in bench.exporters:
                measure_latency(exporter)
            for exporter in bench.exporters:
                if exporter.size != TRANSACTIONS or exporter.kind == OURS_SHIPPED:
                    exporter.memory = memory_mb(exporter.proc.pid)
                    exporter.proc.stop()

            window = [
                e for e in bench.exporters if e.size == TRANSACTIONS and e.kind != OURS_SHIPPED
            ]
            bench.phase(
                f"two scrapers per exporter, {SCRAPE_GAP[0]:g}-{SCRAPE_GAP[1]:g} s "
                f"apart, {WINDOW:g} s, {len(window)} exporters at once"
            )
            two_scraper_window(window, postgres.process.log_path)
            for exporter in bench.exporters:
                if exporter.proc.running():
                    exporter.memory = memory_mb(exporter.proc.pid)
            bench.phase("done")
        finally:
            postgres.cleanup()
    return report(bench.exporters)


def report(exporters: list[Exporter]) -> int:
    per_scrape = {e.name: e.latency_cpu / len(e.latencies) * 1000 for e in exporters}
    say()
    say(
        f"1. Back-to-back scrapes, one exporter at a time ({TRANSACTIONS:,} or "
        f"{SMALL_TRANSACTIONS:,} transactions, {PARTNERS:,} partners)"
    )
    rows = []
    for e in exporters:
        rows.append(
            [
                e.name + (f" ({e.latency_note})" if e.latency_note else ""),
                len(e.latencies),
                ms(percentile(e.latencies, 50)),
                ms(percentile(e.latencies, 99)),
                ms(max(e.latencies)),
                f"{per_scrape[e.name]:.2f}",
            ]
        )
    say(
        table(
            ["exporter / database", "scrapes", "p50 ms", "p99 ms", "max ms", "CPU ms/scrape"], rows
        )
    )

    window = [e for e in exporters if e.window_scrapes]
    say()
    say(
        f"2. Two scrapers per exporter every {SCRAPE_GAP[0]:g}-{SCRAPE_GAP[1]:g} s for "
        f"{WINDOW:g} s, all at once (CPU includes the scheduled queries)"
    )
    per_minute = 60.0 / WINDOW
    rows = []
    for e in window:
        rows.append(
            [
                e.name,
                e.window_scrapes,
                f"{e.window_cpu / e.window_scrapes * 1000:.1f}",
                f"{e.window_cpu / WINDOW * 100:.1f}",
                f"{e.window_self_count * per_minute:.0f}",
                f"{e.window_logged * per_minute:.0f}" if e.app_name else "-",
            ]
        )
    say(
        table(
            [
                "exporter / database",
                "scrapes",
                "CPU ms/scrape",
                "CPU %",
                "queries/min (own count)",
                "queries/min (server log)",
            ],
            rows,
        )
    )

    say()
    say("3. Memory at the end (PSS: RSS with shared pages divided among their users)")
    rows = [
        [e.name, f"{e.memory.get('rss', 0):.1f}", f"{e.memory.get('pss', 0):.1f}"]
        for e in exporters
    ]
    say(table(["exporter / database", "RSS MiB", "PSS MiB"], rows))

    say()
    say("Ratios, query-exporter / ours (above 1: ours costs less)")
    ours = {e.label: e for e in exporters if e.kind == OURS}
    rows = []
    cpu_ok, cpu_parts = True, []
    for e in exporters:
        if e.kind not in (QE_SCRAPE, QE_INTERVAL):
            continue
        mine = ours[e.label]
        theirs_cpu, own_cpu = per_scrape[e.name], per_scrape[mine.name]
        if e.size == TRANSACTIONS:
            cpu_ok &= own_cpu < theirs_cpu
            cpu_parts.append(
                f"{own_cpu:.2f} vs {theirs_cpu:.2f} ms on {e.label} ({e.kind.split(', ')[1]})"
            )
        in_window = e.window_scrapes and mine.window_scrapes
        theirs_window = e.window_cpu / e.window_scrapes if in_window else 0.0
        own_window = mine.window_cpu / mine.window_scrapes if in_window else 0.0
        rows.append(
            [
                e.name,
                f"{percentile(e.latencies, 99) / percentile(mine.latencies, 99):.1f}x",
                f"{theirs_cpu / own_cpu:.1f}x" if own_cpu else "inf",
                f"{theirs_window / own_window:.1f}x" if in_window and mine.window_cpu else "-",
                f"{e.window_self_count / mine.window_self_count:.1f}x"
                if in_window and mine.window_self_count
                else "-",
            ]
        )
    say(
        table(
            ["vs", "scrape p99", "CPU per scrape", "CPU per scrape, two scrapers", "queries/min"],
            rows,
        )
    )

    ours_all = [e for e in exporters if e.kind in (OURS, OURS_SHIPPED)]
    worst = max(percentile(e.latencies, 99) for e in ours_all)
    say()
    say(
        verdict(
            "scrape p99 under 10 ms whatever the database size",
            worst < TARGET_P99,
            "p99 "
            + ", ".join(
                f"{ms(percentile(e.latencies, 99))} ms on {e.label}"
                + (" (shipped config)" if e.kind == OURS_SHIPPED else "")
                for e in ours_all
            ),
        )
    )
    say(
        verdict(
            "less CPU per scrape than query-exporter for the same metrics",
            cpu_ok,
            "CPU ms per back-to-back scrape, ours vs query-exporter: " + ", ".join(cpu_parts),
        )
    )
    rss = max(e.memory.get("rss", 0) for e in ours_all)
    say(
        verdict(
            "exporter under 60 MB resident",
            rss < TARGET_RSS_MB,
            "RSS "
            + ", ".join(
                f"{e.memory.get('rss', 0):.1f} MiB on {e.label}"
                + (" (shipped config)" if e.kind == OURS_SHIPPED else "")
                for e in ours_all
            ),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
