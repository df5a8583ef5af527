"""A partner platform the end-to-end test controls: its database and its API.

:class:`PlatformDatabase` is a SQLite file with the platform's schema (the
fixed interface in the project's design: ``partners``, ``energy_pools``,
``transactions``) whose energy pool the test sets directly. Partners 1 and 2
have 10 completed transactions each; with ``partners=250`` the platform holds
that many, skewed as a real one (partner 3 is the largest, partner ``n`` has
about ``600 / (n - 2)``, at least one), so a test's partner is watched among
hundreds, as in production.
:class:`PlatformAPI` is a health endpoint whose latency the test sets.

    db = PlatformDatabase(tmp_path / "platform.db", capacity=1000, available=800)
    api = PlatformAPI().start()
    db.set_available(100)        # 10 %: under the critical threshold
    api.delay = 1.5              # slower than the 1 s threshold
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.harness import free_port

SCHEMA = """
CREATE TABLE partners (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
                       status TEXT NOT NULL, created_at TIMESTAMP NOT NULL);
CREATE TABLE energy_pools (name TEXT PRIMARY KEY, capacity_units NUMERIC NOT NULL,
                           available_units NUMERIC NOT NULL, updated_at TIMESTAMP NOT NULL);
CREATE TABLE transactions (id INTEGER PRIMARY KEY, partner_id INTEGER NOT NULL,
                           status TEXT NOT NULL, amount_units NUMERIC NOT NULL,
                           created_at TIMESTAMP NOT NULL);
"""


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")


class PlatformDatabase:
    def __init__(
        self,
        path: Path,
        pool: str = "main",
        capacity: float = 1000,
        available: float = 800,
        partners: int = 2,
    ):
        self.path = Path(path)
        self.pool = pool
        self.partners = partners
        names = {1: "Acme Energy", 2: "Globex"}
        with self._connect() as conn:
            conn.executescript(SCHEMA)
            conn.executemany(
                "INSERT INTO partners VALUES (?, ?, ?, ?)",
                [
                    (n, names.get(n, f"Partner {n}"), "active", _now())
                    for n in range(1, max(2, partners) + 1)
                ],
            )
            conn.execute(
                "INSERT INTO energy_pools VALUES (?, ?, ?, ?)", (pool, capacity, available, _now())
            )
            recent = (datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1)).isoformat(
                sep=" "
            )
            rows = [(1 + i % 2, "completed", 5, recent) for i in range(20)]
            for n in range(3, partners + 1):
                rows += [(n, "completed", 1, recent)] * max(1, 600 // (n - 2))
            conn.executemany(
                "INSERT INTO transactions (partner_id, status, amount_units, created_at) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def add_transactions(
        self, partner_id: int, status: str, count: int, amount: float = 5
    ) -> float:
        """Insert ``count`` settled transactions of a partner; returns ``time.time()``."""
        with self._connect() as conn:
            conn.executemany(
                "INSERT INTO transactions (partner_id, status, amount_units, created_at) "
                "VALUES (?, ?, ?, ?)",
                [(partner_id, status, amount, _now())] * count,
            )
        return time.time()

    def set_available(self, units: float) -> float:
        """Set the pool's available units; returns the time of the change (``time.time()``)."""
        with self._connect() as conn:
            conn.execute(
                "UPDATE energy_pools SET available_units = ?, updated_at = ? WHERE name = ?",
                (units, _now(), self.pool),
            )
        return time.time()


class PlatformAPI:
    """``GET /healthz`` answers ``{"status": "ok"}`` after ``delay`` seconds."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.host = "127.0.0.1"
        self.port = free_port()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> PlatformAPI:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                time.sleep(api.delay)
                ok = self.path.split("?")[0] == "/healthz"
                body = json.dumps({"status": "ok"} if ok else {"error": "not found"}).encode()
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> PlatformAPI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
