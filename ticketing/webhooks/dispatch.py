"""The per-process dispatcher of partner webhook posts: a bounded thread pool,
per-endpoint slots and a circuit per endpoint.

``requests`` is synchronous, so concurrency comes from threads: at most
``webhooks.delivery.concurrency`` posts are in flight in a process, at most
``per_endpoint`` of them to one endpoint.  A hanging endpoint holds only its own
slots; the others keep flowing.

**Circuits.** ``circuit_failures`` consecutive failed attempts (``retry`` or
``blocked``) to an endpoint open its circuit: for ``circuit_open_for`` no post
is made to it (its due events are put back until then, logged ``circuit_open``);
then one probe is let through (half-open): a success closes the circuit, a
failure opens it again.  Circuits are per process (every process learns on
its own); events put back while a circuit is open are not due for the other
processes either.

The pool's threads never touch the database: :mod:`ticketing.webhooks.delivery`
gives each task its own application context (its own SQLAlchemy session) to
record the outcome.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from ticketing.webhooks import metrics
from ticketing.webhooks.settings import DeliverySettings

log = logging.getLogger("ticketing.webhooks")

T = TypeVar("T")

#: Verdicts of :meth:`Dispatcher.admit`.
ADMITTED = "admitted"
BUSY = "busy"  # the endpoint (or the process) has no free slot: try again shortly
OPEN = "open"  # the endpoint's circuit is open: try again after the probe time


@dataclass
class Circuit:
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False


class Dispatcher:
    """Slots and circuits of one process (made again after a fork)."""

    def __init__(self, settings: DeliverySettings, on_free: Callable[[], None] | None = None):
        self.settings = settings
        self.pid = os.getpid()
        self._on_free = on_free
        self._lock = threading.Lock()
        self._in_flight = 0
        self._per_endpoint: dict[int, int] = {}
        self._circuits: dict[int, Circuit] = {}
        self._pool = ThreadPoolExecutor(
            max_workers=settings.concurrency, thread_name_prefix="webhook-delivery"
        )

    def free_slots(self) -> int:
        with self._lock:
            return self.settings.concurrency - self._in_flight

    def in_flight(self, endpoint_id: int | None = None) -> int:
        with self._lock:
            if endpoint_id is None:
                return self._in_flight
            return self._per_endpoint.get(endpoint_id, 0)

    def admit(self, endpoint_id: int, now: float | None = None) -> tuple[str, float]:
        """Take a slot for a post to ``endpoint_id``: ``(ADMITTED, 0)``, or ``(BUSY or
        OPEN, seconds to wait)`` without a slot."""
        now = time.monotonic() if now is None else now
        with self._lock:
            circuit = self._circuits.get(endpoint_id)
            probe = False
            if circuit is not None and circuit.opened_at is not None:
                reopen = circuit.opened_at + self.settings.circuit_open_for
                if now < reopen:
                    return OPEN, reopen - now
                if circuit.probing:  # half-open: one probe at a time
                    return OPEN, self.settings.circuit_open_for
                probe = True
            if (
                self._in_flight >= self.settings.concurrency
                or self._per_endpoint.get(endpoint_id, 0) >= self.settings.per_endpoint
            ):
                return BUSY, 1.0
            if probe and circuit is not None:
                circuit.probing = True
            self._in_flight += 1
            self._per_endpoint[endpoint_id] = self._per_endpoint.get(endpoint_id, 0) + 1
            metrics.in_flight.inc()
            return ADMITTED, 0.0

    def submit(self, endpoint_id: int, task: Callable[[], T]) -> Future[T]:
        """Run ``task`` in the pool in the slot :meth:`admit` took; the slot is freed after."""

        def run() -> T:
            try:
                return task()
            finally:
                self._release(endpoint_id)

        try:
            return self._pool.submit(run)
        except BaseException:
            self._release(endpoint_id)
            raise

    def _release(self, endpoint_id: int) -> None:
        with self._lock:
            self._in_flight -= 1
            left = self._per_endpoint.get(endpoint_id, 1) - 1
            if left > 0:
                self._per_endpoint[endpoint_id] = left
            else:
                self._per_endpoint.pop(endpoint_id, None)
            metrics.in_flight.dec()
        if self._on_free is not None:
            try:
                self._on_free()
            except Exception:  # waking the worker is a courtesy
                log.debug("webhooks: waking the delivery worker failed", exc_info=True)

    def record(self, endpoint_id: int, ok: bool, now: float | None = None) -> str | None:
        """Count an attempt's outcome in the endpoint's circuit: ``"opened"`` when this
        failure opened it, ``"closed"`` when this success closed it, else None."""
        now = time.monotonic() if now is None else now
        with self._lock:
            circuit = self._circuits.get(endpoint_id)
            if ok:
                if circuit is None:
                    return None
                del self._circuits[endpoint_id]
                if circuit.opened_at is not None:
                    self._count_open()
                    return "closed"
                return None
            circuit = self._circuits.setdefault(endpoint_id, Circuit())
            circuit.failures += 1
            circuit.probing = False
            if circuit.opened_at is not None:  # the probe failed: open again
                circuit.opened_at = now
                return None
            if circuit.failures >= self.settings.circuit_failures:
                circuit.opened_at = now
                self._count_open()
                metrics.circuit_opened.inc()
                return "opened"
            return None

    def circuit_failures(self, endpoint_id: int) -> int:
        with self._lock:
            circuit = self._circuits.get(endpoint_id)
            return 0 if circuit is None else circuit.failures

    def _count_open(self) -> None:
        metrics.circuits_open.set(
            sum(1 for c in self._circuits.values() if c.opened_at is not None)
        )

    def shutdown(self, wait: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=True)
