"""A tiny WSGI app for the profiler's multiprocess test, run by gunicorn with several workers.

``GET /work?delay=0.2&fail=1`` runs a profiled function (sleeping, raising on
demand) and answers with the worker's pid; ``GET /metrics`` serves the
metrics of all workers summed by ``MultiProcessCollector``.
"""

import os
import time
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry, generate_latest, multiprocess

from exporter.profiler import profile


@profile("demo_work")
def work(delay: float, fail: bool) -> None:
    time.sleep(delay)
    if fail:
        raise ValueError("failed on request")


def app(environ, start_response):
    if environ["PATH_INFO"] == "/metrics":
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
        start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4")])
        return [body]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    try:
        work(float(query.get("delay", ["0"])[0]), query.get("fail") == ["1"])
        status = "200 OK"
    except ValueError:
        status = "500 Internal Server Error"
    start_response(status, [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
