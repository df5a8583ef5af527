"""The delivery worker: a background thread in each ticketing process.

It runs :func:`~ticketing.outbox.delivery.deliver_due` every ``poll_interval``
seconds, and at once when a transaction of its own process commits a new
outbox message (so a notification does not wait for the next poll).  Several
processes (gunicorn workers, several hosts) may each run one: the claim in
:mod:`ticketing.outbox.store` gives every message to one of them at a time.

The thread is a daemon: stopping the process stops it, possibly in the middle
of a post; the claim timeout then hands that message to the next deliverer.
After a ``fork()`` (gunicorn with ``preload_app``) the child has no thread, so
:meth:`DeliveryWorker.ensure_running` (called before each request) starts one.
"""

from __future__ import annotations

import logging
import os
import threading

from flask import Flask

from ticketing.outbox.delivery import deliver_due
from ticketing.outbox.settings import OutboxSettings

log = logging.getLogger("ticketing.outbox")


class DeliveryWorker:
    def __init__(self, app: Flask, settings: OutboxSettings):
        self.app = app
        self.settings = settings
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._pid == os.getpid() and self._thread is not None and self._thread.is_alive()

    def ensure_running(self) -> None:
        """Start the thread in this process unless it runs already (cheap when it does)."""
        if self.running:
            return
        with self._lock:
            if self.running:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="outbox-delivery", daemon=True)
            self._pid = os.getpid()
            self._thread.start()
            log.info("outbox: delivery worker started in process %s", self._pid)

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        last_error: str | None = None
        while not self._stop.is_set():
            self._wake.clear()
            busy = False
            try:
                with self.app.app_context():
                    state = self.app.extensions.get("outbox")
                    report = (
                        state.deliver(max_batches=10, background=True)
                        if state is not None
                        else deliver_due(self.settings, max_batches=10)
                    )
                # A full pass with no failure may have left more due messages.
                busy = report.failed == 0 and report.delivered >= 10 * self.settings.batch_size
                if last_error is not None:
                    log.warning("outbox: delivery passes work again")
                    last_error = None
            except Exception as exc:  # the database may be away for a while: keep going
                error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                if error != last_error:  # once per distinct problem, not every poll
                    log.exception(
                        "outbox: delivery pass failed (retrying every %gs)",
                        self.settings.poll_interval,
                    )
                    last_error = error
            if not busy:
                self._wake.wait(self.settings.poll_interval)
