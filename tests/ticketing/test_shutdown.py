"""The ticket service's gunicorn workers stop on every signal, whatever the main thread holds.

A signal handler runs on the main thread, inside whatever that thread was
doing. gthread's own quick-shutdown handler shuts the thread pool down and so
waits for the pool's lock, which the main thread holds while it hands a
connection to the pool; a signal landing there hung the worker until the master
killed it (python/cpython#121649). The handlers of ticketing/runtime/shutdown.py
take no lock: these tests send the real signals to this process while the locks
are held by the code they interrupt. The gunicorn side (live-feed clients closed
with 1001 on SIGINT) is tested in tests/live/test_feed.py.
"""

import os
import signal
import threading

import pytest
from gunicorn.config import Config
from gunicorn.workers.gthread import ThreadWorker

from ticketing.runtime import shutdown

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


@pytest.fixture
def worker():
    """A gthread worker as gunicorn prepares it in the child, before its loop runs."""
    saved = {sig: signal.getsignal(sig) for sig in SIGNALS}
    worker = ThreadWorker(0, os.getppid(), [], None, 30, Config(), None)
    worker.tpool = worker.get_thread_pool()
    worker.method_queue.init()
    # gunicorn's own handlers first (Worker.init_signals), then ours over them.
    signal.signal(signal.SIGTERM, worker.handle_exit)
    signal.signal(signal.SIGINT, worker.handle_quit)
    signal.signal(signal.SIGQUIT, worker.handle_quit)
    shutdown.install(worker)
    yield worker
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    worker.tpool.shutdown(wait=True)
    worker.method_queue.close()
    worker.tmp.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT])
def test_a_quick_shutdown_exits_while_the_thread_pool_lock_is_held(worker, sig):
    with pytest.raises(SystemExit) as exited:
        with worker.tpool._shutdown_lock:  # as inside ThreadPoolExecutor.submit()
            os.kill(os.getpid(), sig)
            signal.sigtimedwait([], 0)  # let the handler run here, lock still held
    assert exited.value.code == 0
    assert worker.alive is False
    # The pool still works for the requests in flight; interpreter exit ends it.
    assert worker.tpool.submit(lambda: 42).result(timeout=10) == 42


def test_a_graceful_stop_queues_the_live_feed_close_for_the_main_loop(worker):
    # Starting a thread takes threading's own lock, held here as while the pool grows:
    # the handler must neither start one nor wait for it.
    with worker.tpool._shutdown_lock, threading._active_limbo_lock:
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0)
    assert worker.alive is False
    queued = []
    while not worker.method_queue._queue.empty():
        queued.append(worker.method_queue._queue.get_nowait())
    # gthread's wake-up call, then closing the live feed's clients, run by the main loop.
    assert [getattr(c.func, "__name__", "") for c in queued][-1] == "close_live_clients"
    for callback in queued:
        callback()  # closing with no live feed in this process is a no-op


def test_a_second_quick_signal_does_not_cut_the_exit_short(worker):
    """Ctrl-C reaches the worker, then the master's SIGQUIT: the exit runs to its end."""
    with pytest.raises(SystemExit):
        os.kill(os.getpid(), signal.SIGINT)
        signal.sigtimedwait([], 0)
    finished = []
    os.kill(os.getpid(), signal.SIGQUIT)  # arrives while the worker_exit hook runs
    signal.sigtimedwait([], 0)
    finished.append(True)
    assert finished == [True]
