"""A simulated partner platform for the demo: a database that keeps moving and a health endpoint.

The real platform is not ours; the exporter only reads its database and probes
its API.  This module stands in for it so the whole stack can run on a laptop:

- it creates the platform schema (``partners``, ``energy_pools``,
  ``transactions``; see docs/demo.md) in any SQLAlchemy database, SQLite by
  default, with 20 partners (two of them suspended) and the energy pool
  ``main`` of 100 000 units;
- a background loop adds a few transactions every tick, mostly completed, a
  few pending (settled a few seconds later, mostly as completed) and, rarely,
  failed, from busy and quiet partners; completed transactions draw energy
  from the pool and the platform trades the pool towards a target that
  wanders between 65 % and 85 % of its capacity over three hours;
- in steady state it is a healthy platform, so only the Watchdog alert fires:
  every partner draws well under the partner rules' energy threshold (the
  busiest about 3 % of the pool's capacity an hour, all of them together
  about 15 %), and a partner's transactions fail at most once in
  ``MIN_SETTLED_BETWEEN_FAILURES`` settled ones (not in its first
  ``FIRST_FAILURE_AFTER`` after a start), so no 5-minute window of even the
  quietest partner's transactions shows a failure ratio near 10 %;
- ``GET /healthz`` answers ``{"status": "ok"}`` after a variable delay (tens of
  milliseconds, now and then a few hundred);
- ``/control/...`` switches scenarios on and off while it runs:

  ``drain-energy``       stop refilling and draw the pool down to its reserve, 2-5 %
  ``slow-api``           the health endpoint takes 1.2 to 2 s to answer
  ``fail-transactions``  half of the new transactions fail
  ``fail-partner``       most of the first partner's (Acme Energy's) new transactions fail
  ``recover``            all of the above off; the pool is refilled quickly

Only pending transactions change status (to completed or failed), so the
counts of completed and failed rows only go up, as the counter
``platform_transactions_total`` expects; the pending count goes up and down.

Run it on its own::

    python -m demo.platform --db sqlite:///run/platform.db --listen 127.0.0.1:8081
    curl -s -XPOST localhost:8081/control/scenario -d '{"scenario": "drain-energy"}'

or let ``python -m demo.stack`` start it, and use ``python -m demo scenario NAME``.
The control endpoint has no authentication: listen on loopback only.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine

log = logging.getLogger("demo.platform")

POOL_NAME = "main"
POOL_CAPACITY = 100_000.0
SCENARIOS = ("drain-energy", "slow-api", "fail-transactions", "fail-partner")
"""Scenarios the simulator itself plays; ``recover`` switches them all off."""
SETTLE_AFTER = timedelta(seconds=5)
"""Pending transactions older than this are settled on the next tick."""
AMOUNT_UNITS = (0.2, 2.0)
"""Energy units a transaction draws (uniform): at two to six transactions a
second, all partners together draw about 15 % of the pool's capacity an hour."""
FAILURE_CHANCE = 0.01
"""Chance that a new transaction fails, and (times ten) that a pending one settles as
failed, on a healthy platform, where ``MIN_SETTLED_BETWEEN_FAILURES`` allows it."""
MIN_SETTLED_BETWEEN_FAILURES = 50
"""A partner's settled transactions between two of its failures on a healthy platform.
A 5-minute window with two failures of a partner holds over 50 of its transactions
(under 4 % failed); one with a single failure crosses 10 % only when it holds fewer
than ten, and the quietest partner settles about 25 in five minutes."""
FIRST_FAILURE_AFTER = 200
"""Settled transactions of a partner before its first failure after a start: rate
windows that begin with the stack (a few transactions long) never hold a failure."""
POOL_WAVE_SECONDS = 3 * 3600
"""The period of the slow wave the pool's level follows on a healthy platform."""
RESERVE_RATIO = (0.02, 0.05)
"""Under ``drain-energy`` the pool is held at this reserve of its capacity."""

PARTNER_NAMES = [
    "Acme Energy",
    "Borealis Grid",
    "Cobalt Mobility",
    "Delta Charging",
    "Elektra Fleet",
    "Fjord Power",
    "Granite Logistics",
    "Helios Retail",
    "Ion Express",
    "Juniper Homes",
    "Kestrel Rail",
    "Lumen Offices",
    "Meridian Ports",
    "Nimbus Data",
    "Orchid Farms",
    "Pylon Transit",
    "Quartz Factories",
    "Rivet Works",
    "Solstice Hotels",
    "Tundra Cold Storage",
]
SUSPENDED = {"Kestrel Rail", "Tundra Cold Storage"}

metadata = MetaData()

partners = Table(
    "partners",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("status", String(16), nullable=False),  # 'active' | 'suspended'
    Column("created_at", DateTime, nullable=False),
)

energy_pools = Table(
    "energy_pools",
    metadata,
    Column("name", Text, primary_key=True),
    Column("capacity_units", Numeric(asdecimal=False), nullable=False),
    Column("available_units", Numeric(asdecimal=False), nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

transactions = Table(
    "transactions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("partner_id", Integer, nullable=False, index=True),
    Column("status", String(16), nullable=False, index=True),  # 'completed' | 'failed' | 'pending'
    Column("amount_units", Numeric(asdecimal=False), nullable=False),
    Column("created_at", DateTime, nullable=False, index=True),
)


def utcnow() -> datetime:
    """Now in UTC, naive, as the platform stores timestamps."""
    return datetime.now(UTC).replace(tzinfo=None)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL so the exporter can read while we write."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 15, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


@dataclass
class ScenarioState:
    """Which scenarios are on, and since when (Unix time)."""

    active: dict[str, float] = field(default_factory=dict)
    recovering_since: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "active": sorted(self.active),
            "since": dict(self.active),
            "recovering": self.recovering_since is not None,
        }


class UnknownScenario(ValueError):
    pass


class Simulator:
    """The platform's moving parts: partners, the energy pool and the stream of transactions.

    ``tick()`` advances the simulation by one step and is what the background
    loop calls; tests call it directly.  Thread-safe: the HTTP handlers read
    and change the scenarios while the loop runs.

        sim = Simulator(make_engine("sqlite:///platform.db"), seed=1)
        sim.setup()
        sim.tick()
        sim.set_scenario("drain-energy")
    """

    def __init__(
        self,
        engine: Engine,
        *,
        seed: int | None = None,
        partner_count: int = len(PARTNER_NAMES),
        capacity: float = POOL_CAPACITY,
    ) -> None:
        self.engine = engine
        self.rng = random.Random(seed)
        self.partner_count = partner_count
        self.capacity = capacity
        self.state = ScenarioState()
        self._lock = threading.Lock()
        self._partner_ids: list[int] = []
        self._partner_weights: list[float] = []
        #: Per partner: settled transactions to go before a healthy failure is allowed.
        self._failure_gap: dict[int, int] = {}

    # ---------------------------------------------------------------- setup

    def setup(self) -> None:
        """Create the schema and the seed rows (partners, pool) unless they exist."""
        metadata.create_all(self.engine)
        now = utcnow()
        with self.engine.begin() as conn:
            if conn.execute(select(func.count()).select_from(partners)).scalar_one() == 0:
                names = [
                    PARTNER_NAMES[i] if i < len(PARTNER_NAMES) else f"Partner {i + 1}"
                    for i in range(self.partner_count)
                ]
                conn.execute(
                    insert(partners),
                    [
                        {
                            "name": name,
                            "status": "suspended" if name in SUSPENDED else "active",
                            "created_at": now - timedelta(days=self.rng.randint(30, 900)),
                        }
                        for name in names
                    ],
                )
            if (
                conn.execute(
                    select(energy_pools.c.name).where(energy_pools.c.name == POOL_NAME)
                ).first()
                is None
            ):
                conn.execute(
                    insert(energy_pools).values(
                        name=POOL_NAME,
                        capacity_units=self.capacity,
                        available_units=round(self._pool_target(), 2),
                        updated_at=now,
                    )
                )
            rows = conn.execute(
                select(partners.c.id).where(partners.c.status == "active").order_by(partners.c.id)
            ).all()
        self._partner_ids = [row.id for row in rows]
        self._failure_gap = {pid: FIRST_FAILURE_AFTER for pid in self._partner_ids}
        # A few busy partners and a long tail of quiet ones.
        self._partner_weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(self._partner_ids))]

    # ------------------------------------------------------------ scenarios

    def set_scenario(self, name: str) -> ScenarioState:
        """Switch ``name`` on, or everything off with ``recover``."""
        with self._lock:
            if name == "recover":
                self.state.active.clear()
                self.state.recovering_since = time.time()
            elif name in SCENARIOS:
                self.state.active[name] = time.time()
                if name == "drain-energy":
                    self.state.recovering_since = None
            else:
                raise UnknownScenario(name)
            log.info("scenario %s: active now %s", name, sorted(self.state.active) or "none")
            return ScenarioState(dict(self.state.active), self.state.recovering_since)

    def is_active(self, name: str) -> bool:
        with self._lock:
            return name in self.state.active

    # ----------------------------------------------------------- simulation

    def health_latency(self) -> float:
        """How long the next health check takes, in seconds."""
        if self.is_active("slow-api"):
            return self.rng.uniform(1.2, 2.0)
        if self.rng.random() < 0.05:
            return self.rng.uniform(0.2, 0.6)
        return min(0.15, 0.015 + self.rng.lognormvariate(math.log(0.03), 0.5))

    def _pool_target(self) -> float:
        """Where the platform keeps the pool: 65 % to 85 %, in a wave of ``POOL_WAVE_SECONDS``.

        The wave follows the clock, so a restart continues it where it was.  At its
        steepest it moves 20 % of the capacity in an hour, so even a short stretch of
        it never predicts an empty pool within the hour (EnergyPoolExhaustionPredicted).
        """
        phase = 2 * math.pi * time.time() / POOL_WAVE_SECONDS
        return self.capacity * (0.75 + 0.10 * math.sin(phase))

    def _healthy_outcome(self, partner_id: int, fails: bool) -> str:
        """``failed`` when the roll ``fails`` and the partner's failure gap allows it.

        Counts the settled transaction towards the gap either way.
        """
        gap = self._failure_gap.get(partner_id, FIRST_FAILURE_AFTER) - 1
        if fails and gap <= 0:
            self._failure_gap[partner_id] = MIN_SETTLED_BETWEEN_FAILURES
            return "failed"
        self._failure_gap[partner_id] = gap
        return "completed"

    def tick(self, now: datetime | None = None) -> dict[str, int]:
        """One step: new and settled transactions, energy drawn and refilled.

        Returns how many transactions reached each status in this step.
        """
        now = now or utcnow()
        with self._lock:
            draining = "drain-energy" in self.state.active
            failing = "fail-transactions" in self.state.active
            failing_partner = (
                self._partner_ids[0]
                if "fail-partner" in self.state.active and self._partner_ids
                else None
            )
            recovering = self.state.recovering_since is not None
        counts = {"completed": 0, "failed": 0, "pending": 0}
        with self.engine.begin() as conn:
            available = float(
                conn.execute(
                    select(energy_pools.c.available_units).where(energy_pools.c.name == POOL_NAME)
                ).scalar_one()
            )
            rows = []
            for _ in range(self.rng.randint(2, 6)):
                partner_id = self.rng.choices(self._partner_ids, self._partner_weights)[0]
                amount = round(self.rng.uniform(*AMOUNT_UNITS), 2)
                roll = self.rng.random()
                if partner_id == failing_partner and roll < 0.6:
                    status = "failed"
                elif failing and roll < 0.5:
                    status = "failed"
                elif roll > 0.95:
                    status = "pending"
                elif amount > available:
                    status = "failed"  # not enough energy left in the pool
                else:
                    status = self._healthy_outcome(partner_id, roll < FAILURE_CHANCE)
                if status == "completed":
                    available -= amount
                counts[status] += 1
                rows.append(
                    {
                        "partner_id": partner_id,
                        "status": status,
                        "amount_units": amount,
                        "created_at": now - timedelta(microseconds=self.rng.randint(0, 900_000)),
                    }
                )
            conn.execute(insert(transactions), rows)

            # Settle the pending transactions of a few seconds ago.
            pending = conn.execute(
                select(
                    transactions.c.id, transactions.c.partner_id, transactions.c.amount_units
                ).where(
                    transactions.c.status == "pending",
                    transactions.c.created_at < now - SETTLE_AFTER,
                )
            ).all()
            for row in pending:
                amount = float(row.amount_units)
                roll = self.rng.random()
                if (failing and roll < 0.5) or amount > available:
                    status = "failed"
                else:
                    status = self._healthy_outcome(row.partner_id, roll < 10 * FAILURE_CHANCE)
                if status == "completed":
                    available -= amount
                counts[status] += 1
                conn.execute(
                    update(transactions).where(transactions.c.id == row.id).values(status=status)
                )

            if draining:
                # Another consumer takes everything above the platform's reserve, and
                # nothing refills it: the pool drops to 2-5 % and stays there, so
                # partners' transactions still find energy (docs/demo.md).
                reserve = self.capacity * self.rng.uniform(*RESERVE_RATIO)
                if available > reserve:
                    available = max(reserve, available - self.capacity * 0.15)
                else:
                    available = reserve
            else:
                # The platform trades the pool towards its target: it buys energy
                # when under it, and sells the surplus when over it.
                target = self._pool_target()
                gain = 0.35 if recovering else 0.15
                if available < target:
                    available += (target - available) * gain
                else:
                    available -= (available - target) * 0.05
                if recovering and abs(available - target) < self.capacity * 0.02:
                    with self._lock:
                        self.state.recovering_since = None
            available = max(0.0, min(self.capacity, available))
            conn.execute(
                update(energy_pools)
                .where(energy_pools.c.name == POOL_NAME)
                .values(available_units=round(available, 2), updated_at=now)
            )
        return counts

    def snapshot(self) -> dict[str, Any]:
        """The scenarios and what the database says now (for ``/control/state``)."""
        with self.engine.connect() as conn:
            pool = conn.execute(select(energy_pools).where(energy_pools.c.name == POOL_NAME)).one()
            by_status = dict(
                conn.execute(
                    select(transactions.c.status, func.count()).group_by(transactions.c.status)
                ).all()
            )
            partner_count = conn.execute(select(func.count()).select_from(partners)).scalar_one()
        with self._lock:
            state = self.state.as_dict()
        return {
            "scenarios": state,
            "energy_pool": {
                "name": pool.name,
                "capacity_units": float(pool.capacity_units),
                "available_units": float(pool.available_units),
                "available_ratio": round(
                    float(pool.available_units) / float(pool.capacity_units), 4
                ),
            },
            "transactions": {s: by_status.get(s, 0) for s in ("completed", "failed", "pending")},
            "partners": partner_count,
        }

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Tick every ``interval`` seconds until ``stop`` is set.

        A failed tick is logged and retried.
        """
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # the database may be busy or gone for a moment
                log.exception("simulation step failed")
            stop.wait(interval)


# ------------------------------------------------------------------------------- HTTP


def make_server(sim: Simulator, host: str, port: int) -> ThreadingHTTPServer:
    """The platform's HTTP side: ``/healthz`` and the ``/control`` endpoints."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "demo-platform/1"

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, code: str, message: str, details: Any = None) -> None:
            self._send(status, {"error": {"code": code, "message": message, "details": details}})

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                latency = sim.health_latency()
                time.sleep(latency)
                self._send(200, {"status": "ok", "latency_seconds": round(latency, 3)})
            elif path == "/control/state":
                try:
                    self._send(200, sim.snapshot())
                except Exception as exc:
                    self._error(503, "unavailable", "platform database unavailable", str(exc))
            elif path == "/":
                self._send(
                    200,
                    {
                        "service": "demo platform",
                        "endpoints": ["/healthz", "/control/state", "POST /control/scenario"],
                        "scenarios": [*SCENARIOS, "recover"],
                    },
                )
            else:
                self._error(404, "not_found", f"no such endpoint: {path}")

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            length = self.headers.get("Content-Length") or "0"
            length = min(int(length), 1 << 20) if length.isdigit() else 0
            raw = self.rfile.read(length) if length else b""
            if path != "/control/scenario":
                self._error(404, "not_found", f"no such endpoint: {path}")
                return
            try:
                name = json.loads(raw or b"{}").get("scenario")
            except (ValueError, AttributeError):
                self._error(400, "invalid_json", "body must be a JSON object")
                return
            try:
                state = sim.set_scenario(str(name))
            except UnknownScenario:
                self._error(
                    400,
                    "unknown_scenario",
                    f"unknown scenario: {name}",
                    {"known": [*SCENARIOS, "recover"]},
                )
                return
            self._send(200, {"scenario": name, "scenarios": state.as_dict()})

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), fmt % args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def parse_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo.platform", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--db", required=True, help="SQLAlchemy URL, e.g. sqlite:///run/platform.db"
    )
    parser.add_argument(
        "--listen",
        type=parse_listen,
        default=("127.0.0.1", 8081),
        help="HOST:PORT for /healthz and /control (default 127.0.0.1:8081)",
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between simulation steps (default 1)"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed, for repeatable runs")
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        choices=SCENARIOS,
        help="start with this scenario on (repeatable)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    sim = Simulator(make_engine(args.db), seed=args.seed)
    sim.setup()
    for name in args.scenario:
        sim.set_scenario(name)
    host, port = args.listen
    server = make_server(sim, host, port)
    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    loop = threading.Thread(target=sim.run, args=(stop, args.interval), name="simulation")
    loop.start()
    web = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="http", daemon=True
    )
    web.start()
    log.info("demo platform on http://%s:%d (database %s)", host, port, args.db)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()
        server.server_close()
        stop.set()
        loop.join(10)
        sim.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
