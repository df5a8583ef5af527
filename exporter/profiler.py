"""Profile operations: a decorator and context manager recording Prometheus metrics.

    from exporter.profiler import profile

    @profile("ticket_create")
    def create_ticket(...): ...

    @profile("partner_webhook", slow_threshold=2.5)
    async def send_webhook(...): ...

    with profile("classify_ticket"):
        ...

Each call is observed in ``operation_duration_seconds{operation}`` (a
histogram: count, sum and buckets, so Prometheus computes mean, p50, p95 and
p99); a call that raises an ``Exception`` counts in
``operation_errors_total{operation}``, a call at or over the slow threshold
in ``operation_slow_total{operation}``. Failures and slow calls are logged
(logger ``exporter.profiler``) with the operation name and duration.

The slow threshold defaults to 1 second; set ``PARTNERWATCH_SLOW_SECONDS`` in
the environment or call :func:`set_slow_threshold`, or pass
``slow_threshold=`` per operation.

Only a histogram and counters are used, so the metrics are correct under
gunicorn's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``): each worker
writes its own files and ``MultiProcessCollector`` sums them at scrape time.

The metrics go to prometheus_client's default registry. Tests pass
``registry=CollectorRegistry()`` to get a private set and read it back with
``registry.get_sample_value("operation_duration_seconds_count",
{"operation": "x"})``.

Per-call cost is kept close to a bare ``Histogram.time()``: the labelled
children are looked up once per operation name (at decoration time for the
decorator) and timing uses ``time.perf_counter``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
from collections.abc import Callable
from time import perf_counter
from types import TracebackType
from typing import Any, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

#: A labelled child's ``observe``, ``inc`` for errors and ``inc`` for slow calls.
_Children = tuple[Callable[[float], None], Callable[[], None], Callable[[], None]]

#: Buckets from 1 ms to 30 s: web requests, queries and webhook calls alike.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _threshold_from_env() -> float:
    raw = os.environ.get("PARTNERWATCH_SLOW_SECONDS")
    if raw is None or raw.strip() == "":
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(
            f"PARTNERWATCH_SLOW_SECONDS must be a number of seconds, got {raw!r}"
        ) from None
    if value <= 0:
        raise ValueError(f"PARTNERWATCH_SLOW_SECONDS must be > 0, got {raw!r}")
    return value


_slow_threshold = _threshold_from_env()


def set_slow_threshold(seconds: float) -> None:
    """Set the default slow threshold (for operations without their own)."""
    global _slow_threshold
    if seconds <= 0:
        raise ValueError("the slow threshold must be > 0")
    _slow_threshold = float(seconds)


def get_slow_threshold() -> float:
    return _slow_threshold


class _Metrics:
    """The three metrics in one registry, and their children cached by operation."""

    def __init__(self, registry: CollectorRegistry | None):
        self.duration = Histogram(
            "operation_duration_seconds",
            "Duration of each profiled call.",
            ["operation"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.errors = Counter(
            "operation_errors_total",
            "Profiled calls that raised.",
            ["operation"],
            registry=registry,
        )
        self.slow = Counter(
            "operation_slow_total",
            "Profiled calls slower than the slow threshold.",
            ["operation"],
            registry=registry,
        )
        self._children: dict[str, _Children] = {}
        self._lock = threading.Lock()

    def children(self, operation: str) -> _Children:
        found = self._children.get(operation)
        if found is None:
            with self._lock:
                found = self._children.get(operation)
                if found is None:
                    found = (
                        self.duration.labels(operation).observe,
                        self.errors.labels(operation).inc,
                        self.slow.labels(operation).inc,
                    )
                    self._children[operation] = found
        return found


_default = _Metrics(REGISTRY)
_by_registry: dict[int, tuple[CollectorRegistry, _Metrics]] = {}
_registry_lock = threading.Lock()


def _metrics_for(registry: CollectorRegistry | None) -> _Metrics:
    if registry is None or registry is REGISTRY:
        return _default
    with _registry_lock:
        entry = _by_registry.get(id(registry))
        if entry is None or entry[0] is not registry:
            entry = (registry, _Metrics(registry))
            _by_registry[id(registry)] = entry
        return entry[1]


def _report(
    operation: str,
    duration: float,
    threshold: float,
    slow_inc: Callable[[], None],
    exc: BaseException | None = None,
) -> None:
    if exc is not None:
        log.error(
            "operation %s failed after %.3fs: %s: %s", operation, duration, type(exc).__name__, exc
        )
    if duration >= threshold:
        slow_inc()
        log.warning(
            "slow operation %s took %.3fs (threshold %.3gs)", operation, duration, threshold
        )


class profile:
    """Profile a function (sync or async) as a decorator, or a block as a context manager.

    ``profile(name)`` returns a new object each time; use one object for one
    ``with`` block at a time (the decorator form has no such limit).
    """

    __slots__ = ("operation", "slow_threshold", "_children", "_start")

    def __init__(
        self,
        operation: str,
        slow_threshold: float | None = None,
        *,
        registry: CollectorRegistry | None = None,
    ):
        if slow_threshold is not None and slow_threshold <= 0:
            raise ValueError("slow_threshold must be > 0")
        self.operation = operation
        self.slow_threshold = slow_threshold
        self._children = _metrics_for(registry).children(operation)
        self._start = 0.0

    # -- decorator ---------------------------------------------------------
    def __call__(self, func: F) -> F:
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError(
                f"profile({self.operation!r}) cannot time a generator; "
                "profile the code that consumes it"
            )
        observe, error_inc, slow_inc = self._children
        operation = self.operation
        fixed = self.slow_threshold

        # One bookkeeping path for sync and async calls alike.
        def failed(duration: float, exc: BaseException) -> None:
            observe(duration)
            error_inc()
            _report(operation, duration, fixed or _slow_threshold, slow_inc, exc)

        def finished(duration: float) -> None:
            observe(duration)
            if duration >= (fixed or _slow_threshold):
                _report(operation, duration, fixed or _slow_threshold, slow_inc)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                start = perf_counter()
                try:
                    result = await func(*args, **kwargs)
                except Exception as exc:
                    failed(perf_counter() - start, exc)
                    raise
                finished(perf_counter() - start)
                return result

            return async_wrapper  # type: ignore[return-value]  # wraps() gives _Wrapped, not F

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = perf_counter()
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                failed(perf_counter() - start, exc)
                raise
            finished(perf_counter() - start)
            return result

        return wrapper  # type: ignore[return-value]  # wraps() gives _Wrapped, not F

    # -- context manager ---------------------------------------------------
    def __enter__(self) -> profile:
        self._start = perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        duration = perf_counter() - self._start
        observe, error_inc, slow_inc = self._children
        observe(duration)
        threshold = self.slow_threshold or _slow_threshold
        failed = exc is not None and isinstance(exc, Exception)
        if failed:
            error_inc()
        if failed or duration >= threshold:
            _report(self.operation, duration, threshold, slow_inc, exc if failed else None)

    async def __aenter__(self) -> profile:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
