"""Start real programs on loopback ports and always stop them.

A :class:`ManagedProcess` runs one command with its output captured to a log
file, waits until it is ready (an HTTP URL answering, or a TCP port accepting)
and stops it with SIGTERM, then SIGKILL.  The log is printed when the process
fails to start, so a broken configuration shows its own error message.

Nothing started here outlives the test run, even a pytest killed outright
(SIGKILL, a CI timeout): each program is started by :func:`demo.supervisor.spawn`
(the stack runner's launcher: one implementation for the product and its
tests), which makes the kernel send it SIGKILL when this process dies
(prctl PR_SET_PDEATHSIG, set by ``setpriv --pdeathsig`` between fork and exec;
PostgreSQL's switch to its own user is made by setpriv too, before the signal
is set, as a change of user clears it). Every child is forked by one thread
that lives as long as the process, since the kernel sends the signal when the
forking *thread* ends. A program's own children go with it: PostgreSQL's
backends and gunicorn's workers leave when their master dies.
:meth:`ManagedProcess.stop` is :func:`demo.supervisor.stop_group`: SIGTERM to
the process group, SIGKILL if it lingers, and a wait until the whole group is
gone.

    proc = ManagedProcess(["redis-server", "--port", str(port)], workdir)
    proc.start(ready=tcp_ready("127.0.0.1", port))
    ...
    proc.stop()
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

# The stack runner's own helpers: one implementation for the product and its tests.
from demo.supervisor import free_port, signal_group, spawn, stop_group, tcp_ready

__all__ = [
    "ManagedProcess",
    "ProcessFailed",
    "ProcessGroup",
    "Ready",
    "free_port",
    "http_ready",
    "pid_alive",
    "tcp_ready",
    "wait_until",
]

#: What a started program gets when the test run dies: nothing is to be saved.
DEATH_SIGNAL = signal.SIGKILL

Ready = Callable[[], bool]


def http_ready(url: str, status: int = 200) -> Ready:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return response.status == status
        except urllib.error.HTTPError as exc:
            return exc.code == status
        except OSError:
            return False

    return check


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (a zombie not yet reaped counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_until(
    predicate: Callable[[], object],
    timeout: float = 30.0,
    interval: float = 0.1,
    message: str = "condition",
) -> object:
    """Poll ``predicate`` until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {message}")
        time.sleep(interval)


class ProcessFailed(RuntimeError):
    pass


class ManagedProcess:
    """One child process with its log file; restartable with the same command."""

    def __init__(
        self,
        cmd: Sequence[str],
        workdir: Path,
        name: str | None = None,
        env: dict[str, str] | None = None,
        user: str | None = None,
    ):
        self.cmd = [str(c) for c in cmd]
        self.workdir = Path(workdir)
        self.name = name or Path(self.cmd[0]).name
        self.env = {**os.environ, **(env or {})}
        self.user = user
        self.log_path = self.workdir / f"{self.name}.log"
        self.popen: subprocess.Popen | None = None
        self._ready: Ready | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, ready: Ready | None = None, timeout: float = 30.0) -> ManagedProcess:
        if self.running():
            raise ProcessFailed(f"{self.name} is already running")
        self._ready = ready or self._ready
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        try:
            self.popen = spawn(
                self.cmd,
                death_signal=DEATH_SIGNAL,
                user=self.user if os.geteuid() == 0 else None,
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()
        if self._ready is not None:
            deadline = time.monotonic() + timeout
            while not self._ready():
                if self.popen.poll() is not None:
                    raise ProcessFailed(
                        f"{self.name} exited with {self.popen.returncode}:\n{self.log()[-4000:]}"
                    )
                if time.monotonic() > deadline:
                    self.stop()
                    raise ProcessFailed(
                        f"{self.name} not ready after {timeout:.0f}s:\n{self.log()[-4000:]}"
                    )
                time.sleep(0.05)
        return self

    def signal(self, sig: int) -> None:
        if self.running():
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL if it lingers, wait until it is gone. Idempotent."""
        if self.popen is None:
            return
        stop_group(self.popen, signal.SIGTERM, timeout)
        self.popen = None

    def kill(self) -> None:
        """Stop abruptly, as a crash would."""
        if self.running():
            signal_group(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)
        self.popen = None

    def restart(self, timeout: float = 30.0) -> ManagedProcess:
        self.stop()
        return self.start(timeout=timeout)

    def __repr__(self) -> str:
        state = "running" if self.running() else "stopped"
        return f"<{self.name} {state} log={self.log_path}>"


class ProcessGroup:
    """Tracks processes so a fixture can stop all of them, whatever happened."""

    def __init__(self) -> None:
        self.processes: list[ManagedProcess] = []

    def add(self, proc: ManagedProcess) -> ManagedProcess:
        self.processes.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.processes):
            try:
                proc.stop()
            except Exception:  # keep stopping the others
                pass
        self.processes.clear()
