"""Command line: ``python -m exporter --config FILE`` (also ``partnerwatch-exporter``).

    python -m exporter --config exporter/partnerwatch.yml --check-config
    python -m exporter --config exporter/partnerwatch.yml --listen 0.0.0.0:9701

Exit status: 0 on a clean stop (SIGTERM, SIGINT) or a valid ``--check-config``,
2 for an invalid configuration (one ``location: problem`` line per problem on
stderr), 1 when the HTTP port cannot be bound.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from exporter.config import ConfigError, load_config
from exporter.schema import Config
from sharedconfig import format_duration

if TYPE_CHECKING:
    from exporter.collectors.base import Collector

log = logging.getLogger("exporter")


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected host:port, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def summary(config: Config, collectors: Sequence[Collector]) -> list[str]:
    lines = [
        f"listen {config.exporter.listen}, staleness {format_duration(config.exporter.staleness)}"
    ]
    if config.databases:
        from exporter.dburl import parse_database_url

        lines.append(
            "databases: "
            + ", ".join(
                f"{name} ({parse_database_url(db.url).dialect})"
                for name, db in sorted(config.databases.items())
            )
        )
    lines.append(f"{len(collectors)} collectors:")
    for collector in collectors:
        lines.append(
            f"  {collector.name}: every {format_duration(collector.interval)}, "
            f"timeout {format_duration(collector.timeout)}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="partnerwatch-exporter",
        description="Serve the platform's state (API, databases, Redis, SQL metrics) "
        "as Prometheus metrics.",
    )
    parser.add_argument("--config", required=True, metavar="FILE", help="YAML configuration")
    parser.add_argument(
        "--listen",
        type=parse_listen,
        metavar="HOST:PORT",
        help="address to serve /metrics on (default: exporter.listen)",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the configuration, print a summary and exit",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return 2

    from exporter.service import Exporter

    exporter = Exporter(config)
    if args.check_config:
        print(f"{args.config}: configuration OK")
        for line in summary(config, exporter.collectors):
            print(line)
        exporter.stop()
        return 0

    host, port = args.listen or parse_listen(config.exporter.listen)
    try:
        exporter.serve(host, port)
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", host, port, exc)
        exporter.stop()
        return 1
    exporter.start()
    log.info("serving /metrics on %s:%s with %d collectors", host, port, len(exporter.collectors))

    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    stopping.wait()
    log.info("stopping")
    exporter.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
