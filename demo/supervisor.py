"""Start the stack's programs, wait until each answers, and stop them all cleanly.

A :class:`Child` is one program with its log file under the run directory.
It runs in a session of its own, so a Ctrl-C typed in the terminal reaches the
stack runner only, and the runner then stops the children in reverse start
order: SIGTERM (or the child's own stop signal) to the child's whole process
group, so gunicorn's workers go with their master, then SIGKILL for whatever
is still there after a grace period (:func:`stop_group`).  On Linux each child
is also asked to receive SIGTERM should the runner itself die abruptly, so
nothing is left behind (:func:`spawn`).

The test harness (tests/harness/processes.py) starts and stops its programs
with the same :func:`spawn` and :func:`stop_group`.

    sup = Supervisor(run_dir / "logs")
    redis = sup.start("redis", ["redis-server", "--port", "6379"],
                      ready=tcp_ready("127.0.0.1", 6379))
    ...
    sup.stop_all()
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import Future
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


# ------------------------------------------------------------ start and stop one program
#
# A child should not outlive the process that started it, even when that process
# is killed outright (SIGKILL, a CI timeout): Linux's parent-death signal
# (prctl PR_SET_PDEATHSIG) is set in the child, between fork and exec, by a tiny
# launcher that then execs the program (same pid, so the signal stays with it):
# util-linux's ``setpriv --pdeathsig``, or where that is missing a few lines of
# Python. No ``preexec_fn``: running Python between fork and exec is unsafe in a
# process with threads, as the test suite's is.
#
# The kernel sends that signal when the *thread* that forked the child ends, not
# the process. So every child is forked by one daemon thread (:class:`_Forker`)
# that lives as long as the process: a child started from a short-lived thread
# (a fixture's helper thread, a thread pool) is not killed when that thread ends.

#: Fallback launcher: ``python -c _LAUNCHER SIGNAL USER PARENT_PID CMD...``.
_LAUNCHER = """\
import ctypes, os, pwd, sys
sig, user, parent, cmd = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4:]
if user:
    entry = pwd.getpwnam(user)
    os.initgroups(user, entry.pw_gid)
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
if ctypes.CDLL(None, use_errno=True).prctl(1, sig) != 0:  # PR_SET_PDEATHSIG, after setuid
    sys.exit("prctl(PR_SET_PDEATHSIG) failed")
if os.getppid() != parent:  # the parent died before prctl
    sys.exit(1)
os.execvp(cmd[0], cmd)
"""


def _setpriv() -> str | None:
    """util-linux's setpriv when it knows ``--pdeathsig`` (util-linux 2.33 and later)."""
    path = shutil.which("setpriv")
    if path is None:
        return None
    try:
        help_text = subprocess.run(
            [path, "--help"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return path if "--pdeathsig" in help_text else None


_SETPRIV = _setpriv() if sys.platform.startswith("linux") else None


def die_with_parent(
    cmd: Sequence[str], sig: int = signal.SIGTERM, user: str | None = None
) -> list[str]:
    """``cmd`` behind a launcher that sets its parent-death signal (and runs it as ``user``).

    The user is switched before the signal is set: the kernel clears the
    parent-death signal when a process changes its user. Outside Linux ``cmd``
    is returned as it is (with ``runuser`` for ``user``).
    """
    cmd = [str(c) for c in cmd]
    if not sys.platform.startswith("linux"):
        return ["runuser", "-u", user, "--", *cmd] if user else cmd
    if _SETPRIV is not None:
        prefix = [_SETPRIV]
        if user:
            entry = pwd.getpwnam(user)
            prefix += [f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups"]
        return [*prefix, "--pdeathsig", signal.Signals(sig).name.removeprefix("SIG"), "--", *cmd]
    return [sys.executable, "-c", _LAUNCHER, str(int(sig)), user or "", str(os.getpid()), *cmd]


class _Forker:
    """One daemon thread, living as long as the process, that forks every child."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._jobs: list[tuple[Callable[[], subprocess.Popen], Future]] = []
        self._wake = threading.Condition(self._lock)

    def call(self, job: Callable[[], subprocess.Popen]) -> subprocess.Popen:
        future: Future = Future()
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked copy of this process
                self._pid = os.getpid()
                self._jobs = []
                threading.Thread(target=self._run, name="child-forker", daemon=True).start()
            self._jobs.append((job, future))
            self._wake.notify()
        return future.result()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._jobs:
                    self._wake.wait()
                job, future = self._jobs.pop(0)
            try:
                future.set_result(job())
            except BaseException as exc:  # handed to the caller
                future.set_exception(exc)


_FORKER = _Forker()


def spawn(
    cmd: Sequence[str],
    *,
    death_signal: int = signal.SIGTERM,
    user: str | None = None,
    **popen_kwargs,
) -> subprocess.Popen:
    """``subprocess.Popen(cmd, **popen_kwargs)`` in a session of its own, tied to this process.

    The child gets ``death_signal`` when this process dies (see above); ``user``
    runs it as that user (this process must be root). Its pid is the program's.
    """
    popen_kwargs.setdefault("start_new_session", True)
    launch = die_with_parent(cmd, death_signal, user)
    return _FORKER.call(lambda: subprocess.Popen(launch, **popen_kwargs))


def group_alive(pgid: int) -> bool:
    """Whether any process of the process group ``pgid`` is left (zombies count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def stop_group(
    popen: subprocess.Popen, stop_signal: int = signal.SIGTERM, grace: float = 10.0
) -> None:
    """Stop a child started in a session of its own and every process of its group.

    ``stop_signal`` to the group, SIGKILL to the group if the child has not
    exited within ``grace`` seconds; then wait (another ``grace`` at most) until
    the group is empty, as gunicorn's workers or PostgreSQL's backends may
    outlive their master by a moment, and SIGKILL whatever is left of it.
    """
    pgid = popen.pid
    if popen.poll() is None:
        signal_group(pgid, stop_signal)
        try:
            popen.wait(grace)
        except subprocess.TimeoutExpired:
            signal_group(pgid, signal.SIGKILL)
            popen.wait(5)
    deadline = time.monotonic() + grace
    while group_alive(pgid):
        if time.monotonic() > deadline:
            signal_group(pgid, signal.SIGKILL)
            break
        time.sleep(0.05)


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
        if self.popen is None:
            return
        stop_group(self.popen, self.stop_signal, grace)


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
            child.popen = spawn(
                child.cmd,
                death_signal=signal.SIGTERM,
                cwd=child.cwd,
                env=child.env,
                stdout=out,
                stderr=None if console else subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
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
