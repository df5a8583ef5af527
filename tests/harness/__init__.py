"""Test harness: real services and notification sinks on loopback ports.

See tests/README.md for how the fixtures in tests/conftest.py use it.
"""

from tests.harness.processes import (
    ManagedProcess,
    ProcessGroup,
    free_port,
    http_ready,
    pid_alive,
    tcp_ready,
    wait_until,
)
from tests.harness.services import (
    Alertmanager,
    Postgres,
    Prometheus,
    PrometheusAPI,
    Redis,
    VictoriaMetrics,
    start_alertmanager,
    start_alertmanager_cluster,
    start_postgres,
    start_prometheus,
    start_redis,
    start_victoria_metrics,
)
from tests.harness.sinks import HTTPSink, SMTPSink

__all__ = [
    "Alertmanager",
    "HTTPSink",
    "ManagedProcess",
    "Postgres",
    "ProcessGroup",
    "Prometheus",
    "PrometheusAPI",
    "Redis",
    "SMTPSink",
    "VictoriaMetrics",
    "free_port",
    "http_ready",
    "pid_alive",
    "start_alertmanager",
    "start_alertmanager_cluster",
    "start_postgres",
    "start_prometheus",
    "start_redis",
    "start_victoria_metrics",
    "tcp_ready",
    "wait_until",
]
