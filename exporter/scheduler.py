"""Run each collector on its own interval, with a deadline, and keep its last result.

Every collector gets a background thread that wakes up every ``interval``
seconds and runs :meth:`~exporter.collectors.base.Collector.collect` in a
short-lived worker thread, waiting at most ``timeout`` (plus a small grace,
so the database-side timeout fires first and gives the clearer message). A
run that overruns is recorded as a failure and the schedule goes on; while
the abandoned worker is still stuck, later runs of that collector are
skipped and counted as failures too, so a hung query costs one thread, not
one per interval.

The results land in a :class:`CollectorState` per collector, which
:mod:`exporter.scrape` turns into /metrics. Scrapes only read these states,
so any number of Prometheus servers scraping cause no extra database load.

    scheduler = Scheduler(collectors)
    scheduler.start()
    ...
    for collector, state in scheduler.snapshot():
        print(collector.name, state.success, state.last_error)
    scheduler.stop()
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import Metric

from exporter.collectors.base import CollectFailed, Collector
from exporter.errors import describe_error

log = logging.getLogger(__name__)

#: Extra time the thread deadline allows beyond the collector's own timeout.
DEADLINE_GRACE = 0.5


@dataclass
class CollectorState:
    """What is known about one collector; replaced as a whole, read without locks."""

    families: tuple[Metric, ...] = ()
    #: ``time.monotonic()`` when ``families`` were produced (None: never).
    families_at: float | None = None
    #: Outcome of the last finished run (None until the first one).
    success: bool | None = None
    duration: float | None = None
    #: Unix time of the last successful run.
    last_success: float | None = None
    errors: int = 0
    runs: int = 0
    last_error: str | None = None


@dataclass
class _Job:
    collector: Collector
    state: CollectorState = field(default_factory=CollectorState)
    worker: threading.Thread | None = None
    thread: threading.Thread | None = None


class Scheduler:
    def __init__(self, collectors: Sequence[Collector]):
        self._jobs = [_Job(c) for c in collectors]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._version = 0

    @property
    def collectors(self) -> list[Collector]:
        return [job.collector for job in self._jobs]

    @property
    def version(self) -> int:
        """Grows by one whenever a run ends: what /metrics shows may have changed."""
        return self._version

    def snapshot(self) -> list[tuple[Collector, CollectorState]]:
        """Each collector with its current state (states are immutable snapshots)."""
        with self._lock:
            return [(job.collector, job.state) for job in self._jobs]

    def start(self) -> None:
        self._stop.clear()
        for job in self._jobs:
            job.thread = threading.Thread(
                target=self._loop, args=(job,), daemon=True, name=f"schedule {job.collector.name}"
            )
            job.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for job in self._jobs:
            if job.thread is not None:
                job.thread.join(max(0.0, deadline - time.monotonic()))
        for job in self._jobs:
            try:
                job.collector.close()
            except Exception:  # closing is best effort
                log.debug("closing %s failed", job.collector.name, exc_info=True)

    def _loop(self, job: _Job) -> None:
        interval = job.collector.interval
        next_run = time.monotonic()
        while not self._stop.wait(max(0.0, next_run - time.monotonic())):
            self._run(job)
            next_run += interval
            now = time.monotonic()
            if next_run < now:  # overran: skip the missed slots rather than bunch up
                next_run = now + interval

    def run_once(self, collector: Collector) -> CollectorState:
        """Run one collector now (outside its schedule) and return its new state."""
        job = next(j for j in self._jobs if j.collector is collector)
        self._run(job)
        return job.state

    def _run(self, job: _Job) -> None:
        collector = job.collector
        if job.worker is not None and job.worker.is_alive():
            self._record(
                job,
                ok=False,
                duration=None,
                families=None,
                error="previous run still in progress (hung past its timeout)",
            )
            return
        outcome: dict[str, Any] = {}

        def work() -> None:
            begin = time.perf_counter()
            try:
                outcome["families"] = list(collector.collect())
            except CollectFailed as exc:
                outcome["error"] = exc.message
                outcome["families"] = exc.families or None
            except Exception as exc:
                outcome["error"] = describe_error(exc)
                log.debug("collector %s raised", collector.name, exc_info=True)
            outcome["duration"] = time.perf_counter() - begin

        worker = threading.Thread(target=work, daemon=True, name=f"collect {collector.name}")
        begin = time.perf_counter()
        worker.start()
        worker.join(collector.timeout + DEADLINE_GRACE)
        if worker.is_alive():
            job.worker = worker
            self._record(
                job,
                ok=False,
                duration=time.perf_counter() - begin,
                families=collector.timeout_families() or None,
                error=f"timed out after {collector.timeout:g}s",
            )
            return
        job.worker = None
        error = outcome.get("error")
        self._record(
            job,
            ok=error is None,
            duration=outcome.get("duration"),
            families=outcome.get("families"),
            error=error,
        )

    def _record(
        self,
        job: _Job,
        *,
        ok: bool,
        duration: float | None,
        families: list[Metric] | None,
        error: str | None,
    ) -> None:
        old = job.state
        changes: dict[str, Any] = {
            "success": ok,
            "duration": duration,
            "runs": old.runs + 1,
            "last_error": error,
        }
        if families is not None:
            changes.update(families=tuple(families), families_at=time.monotonic())
        if ok:
            changes["last_success"] = time.time()
        else:
            changes["errors"] = old.errors + 1
        with self._lock:
            job.state = dataclasses.replace(old, **changes)
            self._version += 1
        name = job.collector.name
        if ok and old.success is False:
            log.info("collector %s recovered", name)
        elif not ok and old.success is not False:
            log.warning("collector %s failed: %s", name, error)
        elif not ok:
            log.debug("collector %s still failing: %s", name, error)
