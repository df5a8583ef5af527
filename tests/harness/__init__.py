"""Test harness: real services and notification sinks on loopback ports.

See tests/README.md for how the fixtures in tests/conftest.py use it.
"""
from .processes import (ManagedProcess, ProcessGroup, free_port, http_ready, pid_alive, tcp_ready,
                        wait_until)
from .services import (Alertmanager, Postgres, Prometheus, Redis, start_alertmanager,
                       start_postgres, start_prometheus, start_redis)
from .sinks import HTTPSink, SMTPSink

__all__ = [
    "Alertmanager", "HTTPSink", "ManagedProcess", "Postgres", "ProcessGroup", "Prometheus",
    "Redis", "SMTPSink", "free_port", "http_ready", "pid_alive", "start_alertmanager",
    "start_postgres", "start_prometheus", "start_redis", "tcp_ready", "wait_until",
]
