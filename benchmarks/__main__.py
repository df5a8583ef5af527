"""Run every benchmark and rewrite benchmarks/RESULTS.md.

    ./dev bench                 # all of them
    ./dev bench profiler_overhead security_overhead   # some of them

Each benchmark is a module of this package runnable as ``python -m
benchmarks.<name>``; it prints its figures (side-by-side measurements taken in
the same run, with ratios) and a verdict line per target. This runner runs them
one after the other in fresh processes, echoes their output and writes it into
RESULTS.md with the date and the machine they were measured on. Running some
of them replaces only their sections: the others stay as they were, each
with the date of its own run.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# In the order they run; the cheaper ones first.
BENCHMARKS = [
    ("profiler_overhead", "Profiler per-call overhead"),
    ("config_load", "Ticket service configuration: worker start and setting reads"),
    ("security_overhead", "Security scanning and rate limiting"),
    ("classifier_cost", "Category model: time per ticket and worker memory"),
    ("exporter_scrape", "Exporter scrape cost vs query-exporter"),
    ("partner_scale", "Every partner watched: 10,000 partners, 1M and 10M transactions"),
    ("ticketing_throughput", "Ticket service under gunicorn on PostgreSQL"),
    ("ticket_search", "Ticket search at 100,000 tickets"),
    ("time_to_notify", "Time to notify"),
    ("ha_load_faults", "Two ticket-service instances under load and faults"),
    ("alert_storm", "Alert storm: every partner's alert at once, to its own webhook"),
    ("status_page", "Status page under 200 concurrent clients"),
]


def machine() -> str:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu or platform.processor() or platform.machine()}), "
        f"{mem_kb / 1024 / 1024:.0f} GiB memory, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def kept_sections(results: Path, titles: list[str]) -> dict[str, str]:
    """The sections of an earlier RESULTS.md for ``titles`` (up to the notes)."""
    if not results.exists():
        return {}
    text = results.read_text().split("\n# Notes", 1)[0]
    found = {}
    for title in titles:
        match = re.search(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", text, re.M | re.S)
        if match:
            found[title] = match.group(0).rstrip() + "\n"
    return found


def main(argv: list[str]) -> int:
    wanted = argv or [name for name, _ in BENCHMARKS]
    unknown = [w for w in wanted if w not in dict(BENCHMARKS)]
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; "
            f"known: {', '.join(n for n, _ in BENCHMARKS)}",
            file=sys.stderr,
        )
        return 2
    started = dt.datetime.now(dt.UTC)
    results = HERE / "RESULTS.md"
    earlier = kept_sections(results, [title for name, title in BENCHMARKS if name not in wanted])
    sections: list[str] = []
    failed = []
    for name, title in BENCHMARKS:
        if name not in wanted:
            if title in earlier:
                sections.append(earlier[title])
            continue
        print(f"\n=== {title} (benchmarks/{name}.py)", flush=True)
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{name}"],
            cwd=HERE.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        took = time.monotonic() - t0
        print(proc.stdout, end="", flush=True)
        status = "" if proc.returncode == 0 else f" (exited with {proc.returncode})"
        if proc.returncode:
            failed.append(name)
        sections.append(
            f"## {title}\n\n`python -m benchmarks.{name}`, {took:.0f} s{status}, "
            f"run on {started:%Y-%m-%d %H:%M} UTC\n\n"
            f"```\n{proc.stdout.strip()}\n```\n"
        )
    header = (
        f"# Benchmark results\n\nWritten by `./dev bench` on "
        f"{started:%Y-%m-%d %H:%M} UTC, on {machine()}"
        + (
            " (the sections without a date of their own come from an earlier run)"
            if earlier
            else ""
        )
        + ".\n"
        "Every ratio compares figures measured side by side in the same run; "
        "absolute numbers depend on the machine and its load.\n\n"
    )
    notes = HERE / "NOTES.md"
    body = header + "\n".join(sections)
    if notes.exists():
        body += "\n" + notes.read_text()
    results.write_text(body)
    print(f"\nwrote {results}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
