"""The process holds what its configuration runs, and no more.

The exporter's memory is mostly the code it imports: each collector's client
is imported only when the configuration enables it, HTTP and Redis are
spoken through the standard library, and SQL goes through the DB-API
drivers. A fresh interpreter builds the exporter, runs every collector once
against real services, and reports the top-level modules it ended up with.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

from tests.harness import HTTPSink
from tests.harness.exporter import ROOT, SHIPPED_COLLECTORS, SHIPPED_CONFIG, shipped_config
from tests.harness.platform_data import seed_platform, seed_ticketing

RUN_ONCE = """
import json, sys
from exporter.config import load_config
from exporter.service import Exporter

exporter = Exporter(load_config(sys.argv[1]))
for collector in exporter.collectors:
    exporter.scheduler.run_once(collector)
failing = {c.name: s.last_error for c, s in exporter.scheduler.snapshot() if not s.success}
exporter.stop()
print(json.dumps({"collectors": len(exporter.collectors), "failing": failing,
                  "modules": sorted({m.partition(".")[0] for m in sys.modules})}))
"""
#: What the exporter used to load whatever its configuration: none of it is needed.
NEVER = {"sqlalchemy", "requests", "urllib3", "redis", "charset_normalizer"}


def run_once(config, env: dict | None = None) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", RUN_ONCE, str(config)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_sql_only_on_sqlite_loads_neither_psycopg_nor_the_probe_clients(tmp_path):
    url = f"sqlite:///{tmp_path / 'platform.db'}"
    seed_platform(url)
    queries = {
        name: query
        for name, query in shipped_config()["queries"].items()
        if query["database"] == "platform"
    }
    path = tmp_path / "exporter.yml"
    path.write_text(yaml.safe_dump({"databases": {"platform": {"url": url}}, "queries": queries}))
    report = run_once(path)
    assert report["failing"] == {} and report["collectors"] == len(queries)
    modules = set(report["modules"])
    assert "sqlite3" in modules
    assert not modules & (NEVER | {"psycopg", "psycopg_binary", "asyncio"})


def test_shipped_config_on_postgresql_loads_no_client_libraries(postgres_server, redis_url):
    platform, ticketing = postgres_server.create_database(), postgres_server.create_database()
    seed_platform(platform)
    seed_ticketing(ticketing)
    with HTTPSink() as api:
        api.responses["/healthz"] = (200, b'{"status": "ok"}')
        report = run_once(
            SHIPPED_CONFIG,
            env={
                **os.environ,
                "PLATFORM_DB_URL": platform,
                "TICKETING_DB_URL": ticketing,
                "REDIS_URL": redis_url,
                "PLATFORM_API_URL": api.url,
            },
        )
    assert report["failing"] == {} and report["collectors"] == SHIPPED_COLLECTORS
    modules = set(report["modules"])
    assert "psycopg" in modules  # which brings asyncio with it
    assert not modules & NEVER
