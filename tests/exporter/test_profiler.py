"""The profiler: sync, async, raising, context manager, slow calls, and gunicorn workers."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from exporter import profiler
from exporter.profiler import profile
from tests.harness import free_port, http_ready
from tests.harness.exporter import ROOT


@pytest.fixture
def registry():
    return CollectorRegistry()


def sample(registry, name, operation):
    return registry.get_sample_value(name, {"operation": operation})


def test_sync_function(registry):
    @profile("add", registry=registry)
    def add(a, b):
        """Adds."""
        return a + b

    assert add(2, b=3) == 5
    assert add(1, 1) == 2
    assert add.__name__ == "add" and add.__doc__ == "Adds."
    assert sample(registry, "operation_duration_seconds_count", "add") == 2
    assert sample(registry, "operation_duration_seconds_sum", "add") >= 0
    assert (
        registry.get_sample_value(
            "operation_duration_seconds_bucket", {"operation": "add", "le": "+Inf"}
        )
        == 2
    )
    assert sample(registry, "operation_errors_total", "add") == 0
    assert sample(registry, "operation_slow_total", "add") == 0


def test_async_function(registry):
    @profile("fetch", registry=registry)
    async def fetch(x):
        await asyncio.sleep(0.01)
        return x * 2

    async def main():
        return await asyncio.gather(fetch(1), fetch(2), fetch(3))

    assert asyncio.run(main()) == [2, 4, 6]
    assert sample(registry, "operation_duration_seconds_count", "fetch") == 3
    # The whole awaited call is timed, not just the creation of the coroutine.
    assert sample(registry, "operation_duration_seconds_sum", "fetch") >= 0.03
    assert asyncio.iscoroutinefunction(fetch)


def test_raising_functions_count_errors_and_log(registry, caplog):
    @profile("explode", registry=registry)
    def explode():
        raise KeyError("boom")

    @profile("aexplode", registry=registry)
    async def aexplode():
        raise RuntimeError("async boom")

    caplog.set_level(logging.INFO, logger="exporter.profiler")
    with pytest.raises(KeyError):
        explode()
    with pytest.raises(RuntimeError):
        asyncio.run(aexplode())
    for op in ("explode", "aexplode"):
        assert sample(registry, "operation_errors_total", op) == 1
        assert sample(registry, "operation_duration_seconds_count", op) == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        m.startswith("operation explode failed after ") and "KeyError" in m for m in messages
    )
    assert any(
        m.startswith("operation aexplode failed after ") and "async boom" in m for m in messages
    )


def test_context_manager(registry):
    with profile("block", registry=registry):
        pass
    with pytest.raises(ZeroDivisionError):
        with profile("block", registry=registry):
            _ = 1 / 0

    async def main():
        async with profile("ablock", registry=registry):
            await asyncio.sleep(0)

    asyncio.run(main())
    assert sample(registry, "operation_duration_seconds_count", "block") == 2
    assert sample(registry, "operation_errors_total", "block") == 1
    assert sample(registry, "operation_duration_seconds_count", "ablock") == 1


def test_slow_calls_counted_and_logged(registry, caplog):
    caplog.set_level(logging.WARNING, logger="exporter.profiler")

    @profile("nap", slow_threshold=0.05, registry=registry)
    def nap(seconds):
        time.sleep(seconds)

    nap(0.06)
    nap(0)
    assert sample(registry, "operation_slow_total", "nap") == 1
    [record] = [r for r in caplog.records if "slow operation" in r.getMessage()]
    assert record.getMessage().startswith("slow operation nap took 0.0")
    assert record.levelno == logging.WARNING


def test_default_threshold_is_configurable(registry):
    assert profiler.get_slow_threshold() == 1.0  # the default (no env variable in tests)
    profiler.set_slow_threshold(0.02)
    try:
        with profile("default", registry=registry):
            time.sleep(0.03)
    finally:
        profiler.set_slow_threshold(1.0)
    with profile("default", registry=registry):
        time.sleep(0.03)
    assert sample(registry, "operation_slow_total", "default") == 1
    with pytest.raises(ValueError):
        profiler.set_slow_threshold(0)


def test_threshold_from_environment():
    import subprocess

    code = "from exporter.profiler import get_slow_threshold; print(get_slow_threshold())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PARTNERWATCH_SLOW_SECONDS": "0.25"},
    )
    assert out.stdout.strip() == "0.25", out.stderr
    bad = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PARTNERWATCH_SLOW_SECONDS": "soon"},
    )
    assert bad.returncode != 0 and "PARTNERWATCH_SLOW_SECONDS" in bad.stderr


def test_default_registry_and_generators():
    from prometheus_client import REGISTRY

    @profile("default_registry_op")
    def op():
        return 1

    before = (
        REGISTRY.get_sample_value(
            "operation_duration_seconds_count", {"operation": "default_registry_op"}
        )
        or 0
    )
    op()
    assert (
        REGISTRY.get_sample_value(
            "operation_duration_seconds_count", {"operation": "default_registry_op"}
        )
        == before + 1
    )
    with pytest.raises(TypeError):

        @profile("gen")
        def gen():
            yield 1


def test_gunicorn_workers_are_summed_on_scrape(processes, tmp_path):
    multiproc = tmp_path / "prometheus-multiproc"
    multiproc.mkdir()
    port = free_port()
    processes.start(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "3",
            "--no-control-socket",
            "--bind",
            f"127.0.0.1:{port}",
            "--chdir",
            str(ROOT),
            "tests.exporter.profiled_app:app",
        ],
        tmp_path,
        name="gunicorn",
        env={
            "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
            "PARTNERWATCH_SLOW_SECONDS": "0.1",
            "PYTHONPATH": str(ROOT),
        },
        ready=http_ready(f"http://127.0.0.1:{port}/metrics"),
    )
    url = f"http://127.0.0.1:{port}"

    def call(i):
        fail = "1" if i % 4 == 0 else "0"
        response = requests.get(f"{url}/work", params={"delay": "0.15", "fail": fail}, timeout=30)
        return response.status_code, response.text

    # Concurrent slow requests: each sync worker holds one, so all three take part.
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(call, range(24)))
    pids = {text for _, text in results}
    assert len(pids) >= 2, f"requests reached only workers {pids}"
    assert sum(status == 500 for status, _ in results) == 6

    families = {
        f.name: f
        for f in text_string_to_metric_families(requests.get(f"{url}/metrics", timeout=10).text)
    }

    def value(family, sample_name):
        return sum(
            s.value
            for s in families[family].samples
            if s.name == sample_name and s.labels.get("operation") == "demo_work"
        )

    # Every worker's files summed: all 24 calls, whichever worker served them.
    assert value("operation_duration_seconds", "operation_duration_seconds_count") == 24
    assert value("operation_errors", "operation_errors_total") == 6
    assert value("operation_slow", "operation_slow_total") == 24
    assert len(os.listdir(multiproc)) >= len(pids)
