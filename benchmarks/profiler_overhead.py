"""Per-call cost of ``exporter.profiler.profile`` next to prometheus_client's own timer.

    python -m benchmarks.profiler_overhead

Measured in one run, on the same trivial function: a bare call, the same
function timed by a labelled ``Histogram.time()`` (prometheus_client's
decorator for sync functions; its context manager inside the coroutine for
async ones, since its decorator does not await), and ``@profile(...)``. Each
figure is the best of several repetitions (the least disturbed by other load);
the verdict compares profile() with Histogram.time() (target: at most 1.5x).
"""

from __future__ import annotations

import asyncio
import sys
import time

from prometheus_client import CollectorRegistry, Histogram

from exporter.profiler import BUCKETS, profile

CALLS = 100_000
REPEATS = 5
TARGET = 1.5


def _best_sync(func, calls: int = CALLS, repeats: int = REPEATS) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            func()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e9


def _best_async(func, calls: int = CALLS, repeats: int = REPEATS) -> float:
    async def run() -> float:
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(calls):
                await func()
            best = min(best, (time.perf_counter() - start) / calls)
        return best

    return asyncio.run(run()) * 1e9


def measure() -> dict[str, float]:
    """Nanoseconds per call for each variant (sync and async)."""
    registry = CollectorRegistry()
    hist = Histogram(
        "bench_duration_seconds", "Benchmark.", ["operation"], buckets=BUCKETS, registry=registry
    )
    child = hist.labels("bench")

    def bare():
        return None

    hist_timed = child.time()(bare)
    profiled = profile("bench", registry=CollectorRegistry())(bare)

    async def abare():
        return None

    async def ahist():
        with child.time():
            return await abare()

    aprofiled = profile("bench_async", registry=CollectorRegistry())(abare)

    figures = {}
    # Interleave the variants so drifting machine load hits them alike.
    for _ in range(2):
        for key, func in (
            ("sync bare", bare),
            ("sync Histogram.time()", hist_timed),
            ("sync profile()", profiled),
        ):
            figures[key] = min(figures.get(key, float("inf")), _best_sync(func))
        for key, func in (
            ("async bare", abare),
            ("async Histogram.time()", ahist),
            ("async profile()", aprofiled),
        ):
            figures[key] = min(figures.get(key, float("inf")), _best_async(func))
    return figures


def main() -> int:
    figures = measure()
    print(f"{CALLS} calls x {REPEATS} repeats, best per-call time in ns")
    verdicts = []
    for kind in ("sync", "async"):
        bare = figures[f"{kind} bare"]
        hist = figures[f"{kind} Histogram.time()"]
        prof = figures[f"{kind} profile()"]
        print(f"  {kind:<5}  bare call          {bare:8.0f} ns")
        print(f"  {kind:<5}  Histogram.time()   {hist:8.0f} ns   (+{hist - bare:.0f} ns over bare)")
        print(f"  {kind:<5}  profile()          {prof:8.0f} ns   (+{prof - bare:.0f} ns over bare)")
        ratio = prof / hist
        overhead_ratio = (prof - bare) / (hist - bare) if hist > bare else float("nan")
        print(
            f"  {kind:<5}  ratio profile()/Histogram.time() = {ratio:.2f} "
            f"(overheads alone: {overhead_ratio:.2f})"
        )
        verdicts.append((kind, ratio))
    ok = True
    for kind, ratio in verdicts:
        good = ratio <= TARGET
        ok &= good
        print(
            f"target: {kind} profile() within {TARGET}x of Histogram.time(): "
            f"{'met' if good else 'MISSED'} ({ratio:.2f}x)"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
