"""Start the stack's programs, wait until each answers, and stop them all cleanly.

A :class:`Child` is one program with its log file under the run directory.
It runs in a session of its own, so a Ctrl-C typed in the terminal reaches the
stack runner only, and the runner then stops the children in reverse start
order: SIGTERM (or the child's own stop signal) to the child's whole process
group, so gunicorn's workers go with their master, then SIGKILL for whatever
is still there after a grace period.  On Linux each child is also asked to
receive SIGTERM should the runner itself die abruptly, so nothing is left
behind.

    sup = Supervisor(run_dir / "logs")
    redis = sup.start("redis", ["redis-server", "--port", "6379"],
                      ready=tcp_ready("127.0.0.1", 6379))
    ...
    sup.stop_all()
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

Ready = Callable[[], bool]


class StartError(RuntimeError):
    """A child exited or did not become ready; the message ends with its log's tail."""


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``port`` now (connections in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def tcp_ready(host: str, port: int) -> Ready:
    def check() -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False

    return check


def http_ready(url: str) -> Ready:
    """Ready when ``url`` answers with a 2xx status."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return 200 <= response.status < 300
        except (urllib.error.URLError, OSError, ValueError):
            return False

    return check


try:  # loaded here, in the runner: the child only calls it between fork and exec
    _prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the runner dies (Linux)."""
    if _prctl is not None:
        _prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    name: str
    cmd: list[str]
    log_path: Path
    cwd: Path
    env: dict[str, str]
    popen: subprocess.Popen | None = None
    started_at: float = field(default=0.0)
    ready: Ready | None = None
    stop_signal: int = signal.SIGTERM

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, self.stop_signal)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(5)
        # Workers of the group (gunicorn's) may outlive their master by a moment.
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(self.popen.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class Supervisor:
    """The stack's children, started in order and stopped in reverse."""

    def __init__(self, log_dir: Path, cwd: Path | None = None) -> None:
        self.log_dir = Path(log_dir)
        self.cwd = Path(cwd or os.getcwd())
        self.children: list[Child] = []

    def run(
        self,
        name: str,
        cmd: Sequence[str],
        env: dict[str, str] | None = None,
        timeout: float = 120.0,
    ) -> str:
        """Run a one-off command to completion (a migration, a setup step); return its output."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [str(c) for c in cmd],
            cwd=self.cwd,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        with open(self.log_dir / f"{name}.log", "a") as log:
            log.write(f"$ {' '.join(map(str, cmd))}\n{result.stdout}{result.stderr}\n")
        if result.returncode != 0:
            raise StartError(
                f"{name} failed with exit code {result.returncode}:\n"
                f"{(result.stdout + result.stderr)[-3000:]}"
            )
        return result.stdout

    def start(
        self,
        name: str,
        cmd: Sequence[str],
        *,
        ready: Ready | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
        cwd: Path | None = None,
        console: bool = False,
        wait: bool = True,
        stop_signal: int = signal.SIGTERM,
    ) -> Child:
        """Start ``cmd``; return once ``ready()`` holds. Raises StartError with the log's tail.

        The child's output goes to ``<log_dir>/<name>.log``, or with ``console``
        to the runner's own standard output (the notification sinks print there).
        With ``wait=False`` it returns at once: call :meth:`wait_ready` later.
        ``stop_signal`` is what :meth:`stop_all` sends the child's group first.
        """
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        child = Child(
            name,
            [str(c) for c in cmd],
            log_path,
            Path(cwd or self.cwd),
            {**os.environ, **(env or {})},
        )
        with open(log_path, "ab") as log:
            out = None if console else log
            child.popen = subprocess.Popen(
                child.cmd,
                cwd=child.cwd,
                env=child.env,
                stdout=out,
                stderr=None if console else subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        child.started_at = time.time()
        child.ready = ready
        child.stop_signal = stop_signal
        self.children.append(child)
        if wait:
            self.wait_ready(child, timeout)
        return child

    def wait_ready(self, child: Child, timeout: float = 60.0) -> None:
        """Until the child's ``ready()`` holds; StartError if it exits or times out first."""
        if child.ready is None:
            return
        deadline = time.monotonic() + timeout
        while not child.ready():
            if child.popen.poll() is not None:
                raise StartError(
                    f"{child.name} exited with code {child.popen.returncode}; "
                    f"log {child.log_path}:\n{child.tail()}"
                )
            if time.monotonic() > deadline:
                raise StartError(
                    f"{child.name} not ready after {timeout:.0f}s; "
                    f"log {child.log_path}:\n{child.tail()}"
                )
            time.sleep(0.1)

    def exited(self) -> list[Child]:
        """Children that have stopped on their own."""
        return [c for c in self.children if c.popen is not None and c.popen.poll() is not None]

    def stop_all(
        self, grace: float = 10.0, report: Callable[[Child, float], None] | None = None
    ) -> None:
        """Stop every child, last started first; ``report(child, seconds)`` after each."""
        for child in reversed(self.children):
            started = time.monotonic()
            try:
                child.stop(grace)
            except Exception:  # keep stopping the others
                pass
            if report is not None:
                report(child, time.monotonic() - started)
