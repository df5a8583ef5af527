"""How a gunicorn worker of the ticket service reacts to being told to stop.

Python runs a signal handler on the main thread, in the middle of whatever that
thread was doing; a handler that waits for a lock the interrupted code holds
waits forever. gunicorn's gthread worker does that on SIGINT and SIGQUIT (quick
shutdown): its handler shuts the thread pool down, which takes the pool's lock,
and the main thread is often inside the pool's ``submit()`` holding it, e.g.
when a client closes its connection at that moment (python/cpython#121649). The
worker then hangs until the master kills it ``graceful_timeout`` later.

The handlers installed here take no lock:

- SIGTERM (graceful): gunicorn's own handler, plus closing the live feed's
  WebSocket clients (1001) through the worker's method queue, which the main
  loop runs; otherwise a worker would wait its whole ``graceful_timeout`` for
  those long-lived connections to end.
- SIGINT, SIGQUIT (quick): stop the loop and raise SystemExit, once. The live-feed
  clients are closed by :func:`close_live_clients` in gunicorn's ``worker_exit`` hook
  while the exit unwinds, and at interpreter exit the pool's threads finish
  their request and end.

ticketing/runtime/gunicorn.conf.py calls :func:`install` from ``post_worker_init`` and
:func:`close_live_clients` from ``worker_exit``.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any


def close_live_clients() -> None:
    """End the live feed's WebSocket connections in this process (1001)."""
    from ticketing.live import stop_all

    stop_all()


def install(worker: Any) -> None:
    """Replace the worker's stop handlers by lock-free ones (see the module doc)."""
    graceful = signal.getsignal(signal.SIGTERM)
    method_queue = getattr(worker, "method_queue", None)  # gthread's main-loop queue

    def on_term(signum: int, frame: FrameType | None) -> None:
        if callable(graceful):
            graceful(signum, frame)  # gthread: stop accepting, wake the loop
        if method_queue is not None:
            method_queue.defer(close_live_clients)  # put + write: no lock taken

    quitting: list[int] = []

    def on_quit(signum: int, frame: FrameType | None) -> None:
        # Once: a Ctrl-C reaches the worker itself and then again as the master's
        # SIGQUIT, which must not cut short the exit the first one started.
        if quitting:
            return
        quitting.append(signum)
        worker.alive = False
        worker.cfg.worker_int(worker)
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_quit)
    signal.signal(signal.SIGQUIT, on_quit)
