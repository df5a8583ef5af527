"""What the benchmarks share: processes, their CPU and memory, HTTP load, verdicts.

The services themselves (PostgreSQL, Redis, Prometheus, Alertmanager, the
SMTP and HTTP sinks) come from the test harness, ``tests.harness``: the
benchmarks are development tooling of the same repository, and start the
same real programs the integration tests do.

    with workdir("exporter-bench") as tmp, ProcessGroup() as procs:
        proc = procs.start([sys.executable, "-m", "exporter", "--config", cfg], tmp,
                           ready=http_ready(url))
        before = cpu_seconds(proc.pid)
        ...
        print(verdict("scrape p99 under 10 ms", p99 < 0.010, f"{p99 * 1000:.1f} ms"))

A verdict line reads ``target: <text>: met|MISSED (<measured>)``; the runner
(``benchmarks/__main__.py``) keeps the output as it is in RESULTS.md.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests import harness
from tests.harness import ManagedProcess, http_ready, tcp_ready, wait_until  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
PEERS_VENV = BENCH_DIR / ".venv-peers"
PEERS_REQUIREMENTS = BENCH_DIR / "peers-requirements.txt"
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: What Prometheus 2.42 sends when it scrapes.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


# ------------------------------------------------------------------ output


def verdict(text: str, met: bool, measured: str) -> str:
    """The line the results file is read by: ``target: <text>: met|MISSED (<measured>)``."""
    return f"target: {text}: {'met' if met else 'MISSED'} ({measured})"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "  ") -> str:
    """A plain aligned text table (first column left-aligned, the others right)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        parts = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append(indent + "  ".join(parts).rstrip())
        if n == 0:
            lines.append(indent + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def say(message: str = "") -> None:
    print(message, flush=True)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-pct * len(ordered) // 100))))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}" if seconds < 0.1 else f"{seconds * 1000:.0f}"


# ------------------------------------------------------- processes and /proc


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and of all its living descendants."""
    return sum(cpu_seconds(p) for p in [pid, *descendants(pid)] if Path(f"/proc/{p}").exists())


def tree_switches(pid: int) -> int:
    """Voluntary context switches (a thread gave up the CPU to wait: a socket, a lock,
    the GIL) of a process and its living descendants, every thread of each, from
    /proc (``/proc/PID/status`` alone counts only a process's main thread)."""
    total = 0
    for p in [pid, *descendants(pid)]:
        for status in Path(f"/proc/{p}/task").glob("*/status"):
            try:
                text = status.read_text()
            except OSError:
                continue
            total += int(text.split("\nvoluntary_ctxt_switches:", 1)[1].split(None, 1)[0])
    return total


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def memory_mb(pid: int) -> dict[str, float]:
    """Resident size (``rss``) and proportional set size (``pss``) in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            values["rss"] = int(line.split()[1]) / 1024
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                values["pss"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return values


class ProcessGroup(harness.ProcessGroup):
    """The harness's process group, started in one call and used as a context manager."""

    def start(
        self,
        cmd: Sequence[str],
        workdir: Path,
        *,
        name: str | None = None,
        env: dict[str, str] | None = None,
        ready: Callable[[], bool] | None = None,
        timeout: float = 60.0,
    ) -> ManagedProcess:
        proc = self.add(ManagedProcess(cmd, workdir, name=name, env=env))
        proc.start(ready=ready, timeout=timeout)
        return proc

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()


@contextlib.contextmanager
def workdir(name: str) -> Iterator[Path]:
    """A scratch directory under /tmp, removed afterwards (kept with BENCH_KEEP=1)."""
    path = Path(tempfile.mkdtemp(prefix=f"partnerwatch-{name}-"))
    os.chmod(path, 0o755)  # PostgreSQL runs as its own user when we are root
    try:
        yield path
    finally:
        if os.environ.get("BENCH_KEEP"):
            print(f"(kept {path})")
        else:
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def ticketing_database(url: str) -> Iterator[tuple[int, str]]:
    """Migrate the ticketing schema at ``url`` and issue the benchmark partner's key.

    Yields ``(partner id, raw key)`` inside the set-up app's context, so the
    block may store more through ``db.session``; commits and lets the
    connections go afterwards.
    """
    from flask_migrate import upgrade

    from ticketing import create_app
    from ticketing.auth import issue_key
    from ticketing.db import db
    from ticketing.models import Partner

    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": url,
            "TICKETING": {"outbox": {"worker": False}, "live": {"enabled": False}},
        }
    )
    with app.app_context():
        upgrade()
        partner = Partner(name="Benchmark Energy")
        db.session.add(partner)
        db.session.flush()
        _, key = issue_key(partner=partner, name="benchmark")
        yield partner.id, key
        db.session.commit()
        db.engine.dispose()


def python_env(**extra: str) -> dict[str, str]:
    """Environment for a Python child that imports this repository's packages."""
    env = {
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    env.update(extra)
    return env


# ------------------------------------------------------------- peer tools


def peers_venv() -> Path:
    """``benchmarks/.venv-peers`` with the pinned peer tools (query-exporter); its bin folder.

    Peers have dependencies that conflict with ours, so they live in their own
    virtualenv, created on first use from ``peers-requirements.txt`` (about a
    minute and a half) and reused while that file is unchanged.
    """
    stamp = PEERS_VENV / ".installed"
    bin_dir = PEERS_VENV / "bin"
    if stamp.exists() and stamp.read_text() == PEERS_REQUIREMENTS.read_text():
        return bin_dir
    say(
        f"(installing the peer tools into {PEERS_VENV.relative_to(ROOT)} "
        f"from {PEERS_REQUIREMENTS.name}: once)"
    )
    base_python = getattr(sys, "_base_executable", None) or sys.executable
    if not (bin_dir / "python").exists():
        subprocess.run([base_python, "-m", "venv", str(PEERS_VENV)], check=True)
    done = subprocess.run(
        [
            str(bin_dir / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-r",
            str(PEERS_REQUIREMENTS),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"installing the peer tools failed:\n{done.stdout[-4000:]}")
    stamp.write_text(PEERS_REQUIREMENTS.read_text())
    return bin_dir


# --------------------------------------------------------------- scraping


class Scraper:
    """GETs one URL over a kept-alive connection (re-opened when the server closes it)."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str = "/metrics",
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ):
        self.path = path
        self.headers = {"Accept": PROMETHEUS_ACCEPT, **(headers or {})}
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)

    def get(self) -> tuple[int, bytes, float]:
        """(status, body, seconds) of one request."""
        start = time.perf_counter()
        try:
            self.conn.request("GET", self.path, headers=self.headers)
            response = self.conn.getresponse()
            body = response.read()
        except (http.client.HTTPException, ConnectionError):
            self.conn.close()  # a kept-alive connection the server dropped: once more
            start = time.perf_counter()
            self.conn.request("GET", self.path, headers=self.headers)
            response = self.conn.getresponse()
            body = response.read()
        return response.status, body, time.perf_counter() - start

    def close(self) -> None:
        self.conn.close()


# ------------------------------------------------------------ HTTP load


class RawConnection:
    """A minimal keep-alive HTTP/1.1 client on one socket, so the load generator
    spends as little of the machine's two cores as it can.

    Requests are prebuilt bytes; answers are read by Content-Length.
    """

    def __init__(self, host: str, port: int, timeout: float = 30.0):
        self.address = (host, port)
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buffer = b""

    def _connect(self) -> None:
        self.sock = socket.create_connection(self.address, timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(self, raw: bytes) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self.sock is None:
                self._connect()
            try:
                self.sock.sendall(raw)
                return self._response()
            except (ConnectionError, _Closed):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise _Closed()
        self.buffer += chunk

    def _response(self) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._recv()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        self.buffer = rest
        while len(self.buffer) < length:
            self._recv()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        if close:
            self.close()
        return status, body


class _Closed(Exception):
    pass


def build_request(
    method: str, path: str, host: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class LoadResult:
    duration: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    first_error: str = ""
    #: every answer, warm-up and edges included (for CPU per request)
    answered: int = 0

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.ok / self.duration if self.duration else 0.0

    def p(self, pct: float) -> float:
        return percentile(self.latencies, pct)


def run_load(
    host: str,
    port: int,
    request_for: Callable[[int, int], bytes],
    *,
    expect: int,
    duration: float,
    concurrency: int,
    warmup: float = 0.5,
) -> LoadResult:
    """``concurrency`` threads, each with its own keep-alive connection, send
    ``request_for(thread, n)`` back to back for ``warmup + duration`` seconds.
    Answers that arrive within the ``duration`` window (after the warm-up) are
    counted: latencies of those with status ``expect``, the others by status."""
    result = LoadResult(duration)
    lock = threading.Lock()
    start_at = time.perf_counter() + warmup
    stop_at = start_at + duration

    def worker(index: int) -> None:
        conn = RawConnection(host, port)
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        errors, first_error, n = 0, "", 0
        try:
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    break
                try:
                    status, body = conn.request(request_for(index, n))
                except OSError as exc:
                    errors += 1
                    first_error = first_error or f"{type(exc).__name__}: {exc}"
                    time.sleep(0.01)
                    continue
                t1 = time.perf_counter()
                n += 1
                if not start_at <= t1 < stop_at:
                    continue  # counted by completion: in-flight requests at either edge are not
                statuses[status] = statuses.get(status, 0) + 1
                if status == expect:
                    latencies.append(t1 - t0)
                elif not first_error:
                    first_error = f"HTTP {status}: {body[:300]!r}"
        finally:
            conn.close()
        with lock:
            result.latencies.extend(latencies)
            for status, count in statuses.items():
                result.statuses[status] = result.statuses.get(status, 0) + count
            result.errors += errors
            result.first_error = result.first_error or first_error
            result.answered += n

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration + warmup + 60)
    return result
