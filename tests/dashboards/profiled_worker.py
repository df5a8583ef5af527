"""A process using the profiler the way platform code does, for the Operations dashboard.

    python -m tests.dashboards.profiled_worker --port 9800

It serves ``/metrics`` and keeps calling three profiled operations: one that
is fast, one that fails every third call, and one over its slow threshold, so
every Operations panel (rates, quantiles, errors, slow calls) has data.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from prometheus_client import start_http_server

from exporter.profiler import profile


@profile("classify_ticket")
def classify_ticket(n: int) -> str:
    time.sleep(0.002)
    return "billing" if n % 2 else "energy"


@profile("partner_webhook")
def partner_webhook(n: int) -> None:
    time.sleep(0.005)
    if n % 3 == 0:
        raise ConnectionError("partner endpoint refused the connection")


def energy_report() -> None:
    with profile("energy_report", slow_threshold=0.05):
        time.sleep(0.06)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interval", type=float, default=0.1)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    start_http_server(args.port, addr="127.0.0.1")
    n = 0
    while True:
        n += 1
        classify_ticket(n)
        try:
            partner_webhook(n)
        except ConnectionError:
            pass
        if n % 5 == 0:
            energy_report()
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
