"""A small platform database that keeps moving, for the dashboard tests.

The platform's schema is not ours (see exporter/partnerwatch.yml); this module
creates it in a SQLite file, fills it with partners, an energy pool and
transactions, and, while :class:`PlatformActivity` runs, keeps adding
transactions (mostly completed, some failed) that draw on the pool, the way
the platform does, so rates and ratios computed by Prometheus have something
to show:

    create_platform_db(path)
    with PlatformActivity(path, interval=0.2):
        ...
"""

from __future__ import annotations

import random
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

SCHEMA = """
CREATE TABLE partners (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE energy_pools (
    name TEXT PRIMARY KEY,
    capacity_units NUMERIC NOT NULL,
    available_units NUMERIC NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE transactions (
    id INTEGER PRIMARY KEY,
    partner_id INTEGER NOT NULL REFERENCES partners (id),
    status TEXT NOT NULL,
    amount_units NUMERIC NOT NULL,
    created_at TIMESTAMP NOT NULL
);
"""

PARTNERS = [
    ("Acme Energy", "active"),
    ("Borealis Grid", "active"),
    ("Cobalt Mobility", "active"),
    ("Delta Charging", "active"),
    ("Kestrel Rail", "suspended"),
]
POOLS = [("main", 10_000.0, 6_500.0), ("reserve", 2_000.0, 1_900.0)]


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def create_platform_db(path: Path) -> None:
    """Create the schema with 5 partners, 2 pools and an hour of transactions."""
    now = utcnow()
    rng = random.Random(7)
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA)
        conn.executemany(
            "INSERT INTO partners (name, status, created_at) VALUES (?, ?, ?)",
            [(n, s, _stamp(now - timedelta(days=30))) for n, s in PARTNERS],
        )
        conn.executemany(
            "INSERT INTO energy_pools VALUES (?, ?, ?, ?)",
            [(n, c, a, _stamp(now)) for n, c, a in POOLS],
        )
        rows = []
        for minute in range(60, 0, -1):
            for _ in range(3):
                status = rng.choices(["completed", "failed", "pending"], [90, 5, 5])[0]
                rows.append(
                    (
                        rng.randint(1, 4),
                        status,
                        rng.randint(1, 20),
                        _stamp(now - timedelta(minutes=minute)),
                    )
                )
        conn.executemany(
            "INSERT INTO transactions (partner_id, status, amount_units, created_at)"
            " VALUES (?, ?, ?, ?)",
            rows,
        )


class PlatformActivity:
    """A thread adding a transaction every ``interval`` seconds until stopped."""

    def __init__(self, path: Path, interval: float = 0.2, failure_share: float = 0.1):
        self.path = path
        self.interval = interval
        self.failure_share = failure_share
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="platform-activity", daemon=True)
        self.added = 0

    def _run(self) -> None:
        rng = random.Random(11)
        conn = sqlite3.connect(self.path, timeout=10)
        try:
            while not self._stop.wait(self.interval):
                status = "failed" if rng.random() < self.failure_share else "completed"
                amount = rng.randint(1, 20)
                with conn:
                    conn.execute(
                        "INSERT INTO transactions (partner_id, status, amount_units,"
                        " created_at) VALUES (?, ?, ?, ?)",
                        (rng.randint(1, 4), status, amount, _stamp(utcnow())),
                    )
                    if status == "completed":
                        conn.execute(
                            "UPDATE energy_pools SET available_units ="
                            " available_units - ?, updated_at = ? WHERE name = 'main'",
                            (amount, _stamp(utcnow())),
                        )
                self.added += 1
        finally:
            conn.close()

    def __enter__(self) -> PlatformActivity:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)
