"""Real Redis, PostgreSQL, Prometheus, Alertmanager and VictoriaMetrics on free loopback ports.

Each ``start_*`` function takes a working directory and returns a small handle
with the address and a few helpers.  The handles wrap a
:class:`~tests.harness.processes.ManagedProcess`, so ``stop()``, ``kill()`` and
``start()`` (on the same port, with the same data) simulate outages.

    prom = start_prometheus(tmp_path, scrape_configs=[
        {"job_name": "exporter", "static_configs": [{"targets": [exporter_addr]}]}],
        scrape_interval="1s")
    prom.wait_for_value('up{job="exporter"}', 1)

For high availability: ``start_alertmanager_cluster(workdir, config, size=2)``
starts Alertmanagers that gossip with each other (``--cluster.*`` on free
loopback ports), and ``start_victoria_metrics(workdir, dedup_interval="1s")``
a single-node VictoriaMetrics that Prometheus replicas ``remote_write`` to
(``vm.write_url``) and that answers the same query API (``vm.query(...)``).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.harness.processes import ManagedProcess, free_port, http_ready, tcp_ready, wait_until


def _which(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise RuntimeError(f"{name} is not installed; ./dev deps installs it")
    return path


# ------------------------------------------------------------------ handles


class Outage:
    """``stop()``, ``kill()`` and ``start()`` again (same port, same data) of ``self.process``."""

    #: Seconds a restart may take to be ready.
    start_timeout = 30.0

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()

    def start(self):
        self.process.start(timeout=self.start_timeout)
        return self


def scraped(metrics_url: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` that carry these labels (among others) on a
    /metrics page; 0 when there are none."""
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(metrics_url, timeout=10).text
    samples = (s for family in text_string_to_metric_families(text) for s in family.samples)
    wanted = labels.items()
    return sum((s.value for s in samples if s.name == name and wanted <= s.labels.items()), 0.0)


class OnLoopback:
    """``url`` (``http://host:port``) and ``address`` (``host:port``) of a handle, and
    the samples of its own /metrics."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` (with these labels) on this process's /metrics."""
        return scraped(f"{self.url}/metrics", name, **labels)


# --------------------------------------------------------------------------- Redis


@dataclass
class Redis(Outage):
    process: ManagedProcess
    port: int
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def client(self):
        import redis

        return redis.Redis(host=self.host, port=self.port, socket_timeout=2)


def start_redis(workdir: Path, port: int | None = None) -> Redis:
    port = port or free_port()
    workdir = Path(workdir) / f"redis-{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [
        _which("redis-server"),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--protected-mode",
        "no",
    ]
    proc = ManagedProcess(cmd, workdir, name="redis")
    proc.start(ready=tcp_ready("127.0.0.1", port))
    return Redis(proc, port)


# --------------------------------------------------------------------- PostgreSQL


def _postgres_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed; ./dev deps installs it")
    return Path(found[-1]).parent


@dataclass
class Postgres(Outage):
    process: ManagedProcess
    port: int
    datadir: Path
    host: str = "127.0.0.1"
    user: str = "postgres"

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.dsn(database), autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, name: str | None = None) -> str:
        """Create a fresh, empty database and return its SQLAlchemy URL."""
        name = name or f"t_{os.urandom(5).hex()}"
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def start(self) -> Postgres:
        """Start again on the same port and data, as after a crash or a stop.

        After ``kill()`` the old postmaster may linger as a zombie (or its backends
        for a moment) and keep ``postmaster.pid``; that stale lock is cleared and
        the start retried, as an operator would.
        """
        for attempt in range(5):
            self._clear_stale_lock()
            try:
                self.process.start(timeout=60)
                return self
            except Exception:
                if attempt == 4:
                    raise
                time.sleep(1)
        return self

    def _clear_stale_lock(self) -> None:
        pidfile = self.datadir / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        if _process_state(pid) in (None, "Z"):
            pidfile.unlink(missing_ok=True)

    def cleanup(self) -> None:
        self.process.stop()
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def _process_state(pid: int) -> str | None:
    """The state letter of a process (``R``, ``S``, ``Z``...), or None when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def start_postgres(port: int | None = None) -> Postgres:
    """initdb a private cluster (trust auth on loopback) and run it.

    PostgreSQL refuses to run as root, so as root the cluster belongs to the
    ``postgres`` user and lives in its own directory under /tmp.
    """
    bindir = _postgres_bindir()
    port = port or free_port()
    base = Path(tempfile.mkdtemp(prefix="partnerwatch-pg-"))
    datadir = base / "data"
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        shutil.chown(base, user, user)
        os.chmod(base, 0o700)
    initdb = [
        str(bindir / "initdb"),
        "-D",
        str(datadir),
        "-A",
        "trust",
        "-U",
        "postgres",
        "-E",
        "UTF8",
        "--locale=C.UTF-8" if _has_c_utf8() else "--locale=C",
    ]
    if user:
        initdb = ["runuser", "-u", user, "--", *initdb]
    subprocess.run(initdb, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cmd = [
        str(bindir / "postgres"),
        "-D",
        str(datadir),
        "-p",
        str(port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        f"unix_socket_directories={base}",
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=200",
    ]
    proc = ManagedProcess(cmd, base, name="postgres", user=user)

    def ready() -> bool:
        try:
            import psycopg

            with psycopg.connect(
                f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=1
            ):
                return True
        except Exception:
            return False

    proc.start(ready=ready, timeout=60)
    return Postgres(proc, port, datadir)


def _has_c_utf8() -> bool:
    try:
        out = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return False
    return any(line.lower() in ("c.utf8", "c.utf-8") for line in out.splitlines())


# --------------------------------------------------------------------- Prometheus


class PrometheusAPI:
    """Query helpers over the Prometheus HTTP API (``url`` is the server's base URL).

    Prometheus and VictoriaMetrics both answer it, so tests read either the same way.
    """

    url: str

    def api(self, path: str, **params: Any) -> Any:
        response = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"{self.url} {path} {params}: {body.get('error', body)}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """Instant query; returns the result vector (``[{"metric":..., "value":[t, "v"]}]``)."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def value(self, expr: str) -> float | None:
        """The single value of an instant query, or None when it returns nothing."""
        result = self.query(expr)
        if not result:
            return None
        if len(result) > 1:
            raise AssertionError(f"{expr} returned {len(result)} series: {result}")
        return float(result[0]["value"][1])

    def values(self, expr: str, by: str) -> dict[str, float]:
        return {r["metric"].get(by, ""): float(r["value"][1]) for r in self.query(expr)}

    def wait_for(
        self, expr: str, predicate: Callable[[list[dict]], bool] = bool, timeout: float = 60.0
    ) -> list[dict]:
        """Poll ``expr`` until ``predicate(result)`` holds; return the result."""
        last: list[dict] = []

        def check():
            nonlocal last
            last = self.query(expr)
            return predicate(last)

        try:
            wait_until(check, timeout=timeout, interval=0.25, message=expr)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; last result: {last}") from None
        return last

    def wait_for_value(self, expr: str, expected: float, timeout: float = 60.0) -> None:
        self.wait_for(
            expr, lambda r: len(r) == 1 and float(r[0]["value"][1]) == expected, timeout=timeout
        )


@dataclass
class Prometheus(OnLoopback, Outage, PrometheusAPI):
    process: ManagedProcess
    port: int
    config_path: Path
    host: str = "127.0.0.1"

    start_timeout = 60.0

    def targets(self) -> list[dict]:
        return self.api("targets")["activeTargets"]

    def alerts(self) -> list[dict]:
        return self.api("alerts")["alerts"]

    def reload(self) -> None:
        requests.post(f"{self.url}/-/reload", timeout=10).raise_for_status()


def start_prometheus(
    workdir: Path,
    scrape_configs: list[dict] | None = None,
    *,
    config: dict | str | Path | None = None,
    rule_files: list[str | Path] | None = None,
    alertmanagers: list[str] | None = None,
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    port: int | None = None,
    extra_args: list[str] | None = None,
) -> Prometheus:
    """Run Prometheus with a generated config, or ``config`` (a dict, YAML text or a file).

    ``alertmanagers`` are ``host:port`` strings; ``rule_files`` are paths.
    """
    port = port or free_port()
    workdir = Path(workdir) / f"prometheus-{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "prometheus.yml"
    if isinstance(config, Path):
        config_path = config.resolve()  # used in place: rule_files stay relative to it
    elif isinstance(config, str):
        config_path.write_text(config)
    else:
        cfg = config or {
            "global": {
                "scrape_interval": scrape_interval,
                "evaluation_interval": evaluation_interval,
                "scrape_timeout": scrape_interval,
            },
            "scrape_configs": scrape_configs or [],
        }
        if rule_files:
            cfg["rule_files"] = [str(Path(p).resolve()) for p in rule_files]
        if alertmanagers:
            cfg["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": alertmanagers}]}]}
        config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = [
        _which("prometheus"),
        f"--config.file={config_path}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
        "--log.level=warn",
        *(extra_args or []),
    ]
    proc = ManagedProcess(cmd, workdir, name="prometheus")
    proc.start(ready=http_ready(f"http://127.0.0.1:{port}/-/ready"), timeout=60)
    return Prometheus(proc, port, config_path)


# ------------------------------------------------------------------- Alertmanager


@dataclass
class Alertmanager(OnLoopback, Outage):
    process: ManagedProcess
    port: int
    config_path: Path
    host: str = "127.0.0.1"
    #: the gossip port when clustered (``start_alertmanager(cluster_port=...)``)
    cluster_port: int | None = None

    start_timeout = 60.0

    def alerts(self, **filters: str) -> list[dict]:
        """Alerts Alertmanager holds now (``/api/v2/alerts``); filters as ``label="value"``."""
        params = [("filter", f'{k}="{v}"') for k, v in filters.items()]
        response = requests.get(f"{self.url}/api/v2/alerts", params=params, timeout=10)
        response.raise_for_status()
        return response.json()

    def post_alerts(self, alerts: list[dict]) -> None:
        requests.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=10).raise_for_status()

    def cluster_status(self) -> dict:
        """``cluster`` of ``/api/v2/status``: ``peers`` and ``status``.

        The status is "ready", "settling" or "disabled".
        """
        response = requests.get(f"{self.url}/api/v2/status", timeout=10)
        response.raise_for_status()
        return response.json()["cluster"]


def start_alertmanager(
    workdir: Path,
    config: dict | str | Path,
    *,
    port: int | None = None,
    extra_args: list[str] | None = None,
    cluster_port: int | None = None,
    peers: list[str] | None = None,
    peer_timeout: str = "15s",
) -> Alertmanager:
    """Run Alertmanager with ``config`` (a dict, YAML text or a file).

    Clustering is off unless ``cluster_port`` is given: then it gossips on that
    loopback port (advertised as such: Alertmanager will not guess a loopback
    address) with ``peers`` (``host:port`` gossip addresses). ``peer_timeout``
    is how long a replica waits for the one before it to notify: Alertmanager's
    default, 15 s (the first replica logs a notification only once its
    receiver has answered, so a slow receiver within a shorter wait is
    notified twice).
    """
    port = port or free_port()
    workdir = Path(workdir) / f"alertmanager-{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "alertmanager.yml"
    if isinstance(config, Path):
        config_path = config.resolve()  # used in place: templates stay relative to it
    elif isinstance(config, str):
        config_path.write_text(config)
    else:
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    if cluster_port is None:
        cluster = ["--cluster.listen-address="]
    else:
        cluster = [
            f"--cluster.listen-address=127.0.0.1:{cluster_port}",
            f"--cluster.advertise-address=127.0.0.1:{cluster_port}",
            *[f"--cluster.peer={peer}" for peer in peers or []],
            f"--cluster.peer-timeout={peer_timeout}",
            "--cluster.settle-timeout=5s",
            "--cluster.reconnect-interval=1s",
            "--cluster.pushpull-interval=5s",
        ]
    cmd = [
        _which("prometheus-alertmanager"),
        f"--config.file={config_path}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        *cluster,
        "--log.level=warn",
        *(extra_args or []),
    ]
    proc = ManagedProcess(cmd, workdir, name="alertmanager")
    proc.start(ready=http_ready(f"http://127.0.0.1:{port}/-/ready"), timeout=60)
    return Alertmanager(proc, port, config_path, cluster_port=cluster_port)


def start_alertmanager_cluster(
    workdir: Path,
    config: dict | str | Path,
    *,
    size: int = 2,
    peer_timeout: str = "15s",
    wait: bool = True,
) -> list[Alertmanager]:
    """``size`` Alertmanagers with one configuration, each peering with all the others.

    With ``wait``, returns once each one sees the whole cluster (``peers``).
    """
    gossip = [free_port() for _ in range(size)]
    started: list[Alertmanager] = []
    try:
        for cluster_port in gossip:
            peers = [f"127.0.0.1:{p}" for p in gossip if p != cluster_port]
            started.append(
                start_alertmanager(
                    workdir,
                    config,
                    cluster_port=cluster_port,
                    peers=peers,
                    peer_timeout=peer_timeout,
                )
            )
        if wait:
            for am in started:
                wait_until(
                    lambda am=am: len(am.cluster_status().get("peers") or []) == size,
                    timeout=30,
                    message=f"Alertmanager {am.address} to see {size} peers",
                )
    except Exception:
        for am in started:
            am.stop()
        raise
    return started


# ----------------------------------------------------------------- VictoriaMetrics


@dataclass
class VictoriaMetrics(OnLoopback, Outage, PrometheusAPI):
    """Single-node VictoriaMetrics: Prometheus ``remote_write`` in, the query API out."""

    process: ManagedProcess
    port: int
    host: str = "127.0.0.1"

    start_timeout = 60.0

    @property
    def write_url(self) -> str:
        """Where Prometheus ``remote_write``s to."""
        return f"{self.url}/api/v1/write"

    def flush(self) -> None:
        """Make every sample received so far searchable (it buffers them for a second)."""
        requests.get(f"{self.url}/internal/force_flush", timeout=10).raise_for_status()


def start_victoria_metrics(
    workdir: Path,
    *,
    dedup_interval: str = "1s",
    port: int | None = None,
    extra_args: list[str] | None = None,
) -> VictoriaMetrics:
    """Run Debian's ``victoria-metrics`` keeping one sample per series per ``dedup_interval``.

    ``-dedup.minScrapeInterval`` is what merges an HA pair's samples of one
    series (it should equal the replicas' scrape interval). Fresh samples are
    visible to queries at once (``-search.latencyOffset=0s``, no response cache),
    as a test that writes and then reads needs.
    """
    port = port or free_port()
    workdir = Path(workdir) / f"victoria-metrics-{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [
        _which("victoria-metrics"),
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-storageDataPath={workdir / 'data'}",
        f"-dedup.minScrapeInterval={dedup_interval}",
        "-search.latencyOffset=0s",
        "-search.disableCache",
        "-loggerLevel=WARN",
        "-retentionPeriod=1d",
        *(extra_args or []),
    ]
    proc = ManagedProcess(cmd, workdir, name="victoria-metrics")
    proc.start(ready=http_ready(f"http://127.0.0.1:{port}/health"), timeout=60)
    return VictoriaMetrics(proc, port)
