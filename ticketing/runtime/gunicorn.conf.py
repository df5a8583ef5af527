"""gunicorn settings for the ticket service.

    gunicorn -c ticketing/runtime/gunicorn.conf.py            # serves ticketing:create_app()

Environment:
    TICKETING_BIND      address to listen on (default 0.0.0.0:8000)
    TICKETING_WORKERS   worker processes (default: WEB_CONCURRENCY, else 2)
    TICKETING_THREADS   threads per worker (default: live.max_clients + 16 with the live
                        feed enabled, since each WebSocket client holds a thread for as
                        long as it stays connected; else 16)
    TICKETING_CONTROL_SOCKET
                        path of gunicorn's control socket (for ``gunicornc``); unset, there
                        is none: its default path is shared by every gunicorn of the user,
                        and a container is managed through signals anyway
    PROMETHEUS_MULTIPROC_DIR
                        where workers write their metric samples so that /metrics,
                        answered by any worker, sums all of them. When unset a fresh
                        temporary directory is used. Stale files of an earlier run are
                        removed at start, and a dead worker's files are marked dead.

The directory must be known before prometheus_client is first imported (the
client picks its storage at import), hence it is set at the top of this file
and the hooks import lazily.
"""

import os
import tempfile
from typing import Any

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ticketing-metrics-")

wsgi_app = "ticketing:create_app()"
bind = os.environ.get("TICKETING_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("TICKETING_WORKERS") or os.environ.get("WEB_CONCURRENCY") or 2)
worker_class = "gthread"


def _default_threads() -> int:
    from ticketing.config import load_sections

    live = load_sections(os.environ.get("TICKETING_CONFIG")).get("live") or {}
    if live.get("enabled", True):
        return int(live.get("max_clients") or 0) + 16
    return 16


threads = int(os.environ.get("TICKETING_THREADS") or _default_threads())
control_socket_disable = not os.environ.get("TICKETING_CONTROL_SOCKET")
if not control_socket_disable:
    control_socket = os.environ["TICKETING_CONTROL_SOCKET"]
timeout = 30
graceful_timeout = 20
keepalive = 5
# What gunicorn itself refuses, before the app sees the request (the answers are
# JSON in the service's error shape: runtime/http_errors.py, installed per worker):
limit_request_line = 4094  # request line (method, URL, version) longer: 414 uri_too_long
limit_request_field_size = 8190  # one header longer: 431 request_header_fields_too_large
limit_request_fields = 100  # more headers: 431 as well
accesslog = "-"
errorlog = "-"
# Request line, status, size and duration; no headers (API keys stay out of logs).
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'


def on_starting(server: Any) -> None:
    """Start from an empty metrics directory: files of an earlier run would be summed too."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: its live gauges must no longer be reported."""
    from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

    GunicornInternalPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)


def post_worker_init(worker: Any) -> None:
    """Stop handlers that take no lock, and close live-feed clients at once on SIGTERM;
    gunicorn's own error answers (414, 431, 400 ...) in the JSON error shape."""
    from ticketing.runtime import http_errors, shutdown

    shutdown.install(worker)
    http_errors.install(worker)


def worker_exit(server: Any, worker: Any) -> None:
    """Close the live feed's WebSocket clients, whatever stopped the worker."""
    from ticketing.runtime import shutdown

    shutdown.close_live_clients()
