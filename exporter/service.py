"""The exporter process: databases, collectors, scheduler and the HTTP server.

    exporter = Exporter(load_config("exporter/partnerwatch.yml"))
    exporter.start()                      # collectors begin their schedules
    server = exporter.serve("127.0.0.1", 9701)
    ...
    exporter.stop()

HTTP endpoints: ``/metrics`` (Prometheus text or OpenMetrics, by the scrape's
Accept header; encoded again only when a collector run has ended or the body
is a second old, see :class:`~exporter.scrape.EncodedMetrics`), ``/status``
(JSON: each collector's last outcome and error message, for people; error
text never goes into labels) and ``/`` (a pointer to both).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import ThreadingWSGIServer

from exporter.collectors import build_collectors, used_databases
from exporter.databases import Database
from exporter.scheduler import Scheduler
from exporter.schema import Config
from exporter.scrape import CachedCollector, EncodedMetrics


class Exporter:
    def __init__(self, config: Config):
        self.config = config
        self.databases = {
            name: Database(name, config.databases[name]) for name in used_databases(config)
        }
        self.collectors = build_collectors(config, self.databases)
        self.scheduler = Scheduler(self.collectors)
        self.registry = CollectorRegistry()
        self.registry.register(CachedCollector(self.scheduler))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self._server: ThreadingWSGIServer | None = None

    def start(self) -> None:
        self.scheduler.start()

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        collectors: dict[str, dict[str, Any]] = {}
        for collector, state in self.scheduler.snapshot():
            collectors[collector.name] = {
                "success": state.success,
                "runs": state.runs,
                "errors": state.errors,
                "last_error": state.last_error,
                "last_duration_seconds": state.duration,
                "last_success_timestamp_seconds": state.last_success,
                "result_age_seconds": None
                if state.families_at is None
                else round(now - state.families_at, 3),
                "interval_seconds": collector.interval,
                "timeout_seconds": collector.timeout,
                "staleness_seconds": collector.staleness,
                **collector.status(),
            }
        return {"collectors": collectors}

    def wsgi_app(self) -> WSGIApplication:
        metrics = EncodedMetrics(self.registry, lambda: self.scheduler.version)

        def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "/")
            if path == "/metrics":
                return metrics(environ, start_response)
            if path == "/status":
                body = json.dumps(self.status(), indent=2).encode()
                start_response(
                    "200 OK",
                    [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
                )
                return [body]
            if path == "/":
                body = b"partnerwatch exporter: /metrics for Prometheus, /status for people\n"
                start_response(
                    "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
                )
                return [body]
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]

        return app

    def serve(self, host: str, port: int) -> ThreadingWSGIServer:
        """Serve HTTP in a background thread; returns the server."""
        server_class = _IPv6Server if ":" in host else ThreadingWSGIServer
        server = make_server(host, port, self.wsgi_app(), server_class, handler_class=_QuietHandler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True, name="http").start()
        return server

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.scheduler.stop()
        for database in self.databases.values():
            database.dispose()


class _IPv6Server(ThreadingWSGIServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes every few seconds: no access log
