"""The whole stack on one machine, with one command and no Docker: ``./dev run``.

Starts, in this order, each as a child process with its log under the run
directory (``./run`` by default):

1. the notification sinks (``demo.sinks``): an SMTP server and an HTTP server
   standing in for the mail relay, Slack and the on-call webhooks; they print
   every notification they receive right here, and record it in
   ``<run>/notifications.jsonl``;
2. Redis;
3. the demo platform (``demo.platform``) with its SQLite database;
4. the ticket service: migrations, a demo partner and staff member with API
   keys (printed), then gunicorn with ``ticketing/runtime/gunicorn.conf.py``; the
   support console is at ``/console/`` (sign in with the staff key);
5. the exporter with the shipped ``exporter/partnerwatch.yml``;
6. Alertmanager with ``alertmanager/alertmanager.yml`` rendered by
   ``alertmanager/render.py``: email to the SMTP sink, Slack and webhooks to
   the HTTP sink, secret files written under ``<run>/alertmanager/secrets``;
7. Prometheus with ``prometheus/prometheus.yml`` rendered by
   ``prometheus/render.py`` (local targets) and the rules in ``rules/``, once
   the ticket service's workers answer, so that its first scrapes find every
   target up;
8. Grafana, when a ``grafana-server`` (or ``grafana``) binary is installed, with
   ``grafana/provisioning`` and the dashboards (Debian has no Grafana package:
   the banner points to docker-compose.yml, which runs it, and docs/dashboards.md).

The run directory keeps its data from one run to the next (the databases,
with the demo accounts and their keys, printed again; Prometheus' and
Alertmanager's data; the notifications record); ``--fresh`` empties it first.

Each uses its usual port when that is free (ticket API 8000, exporter 9701,
Prometheus 9090, Alertmanager 9093, Grafana 3000, demo platform 8081, Redis
6379, SMTP sink 1025, HTTP sink 8025) and a free one otherwise
(``--free-ports``: always a free one).  Once every Prometheus target is up, the
URLs are printed (the banner says whether the data was kept) and written with
the keys and process ids to
``<run>/stack.json`` (``python -m demo scenario ...`` reads it).  Ctrl-C (or
SIGTERM) stops everything, in reverse order.

Prometheus scrapes and evaluates rules every 5 s (the interval the Grafana
datasource assumes); the exporter and Alertmanager keep their shipped timings.
``--fast`` shortens them for tests and impatient demos: 1 s scrapes and rule
evaluations, exporter collectors every 2 s (the API probe every 3 s),
Alertmanager's ``group_wait`` 2 s and ``group_interval`` 10 s.  The alert rules
themselves (thresholds, ``for:``) are always used as shipped.

``--ha`` runs more than one of everything (docs/deployment.md, "Scaling out"):
a second ticket-service instance on the same database and Redis (8001), two
Alertmanagers in one cluster (9093 and 9095, gossiping on 9094 and 9096), two
Prometheus replicas (9090 and 9091, external label ``replica`` a and b) that
both send to both Alertmanagers and remote-write to VictoriaMetrics (8428,
``-dedup.minScrapeInterval`` set to the scrape interval), which Grafana gets
as its second datasource. The local stack keeps its SQLite ticketing database
(both instances share the file); a deployment shares PostgreSQL.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import secrets
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from demo.supervisor import StartError, Supervisor, free_port, http_ready, port_free, tcp_ready
from sharedconfig import format_duration, parse_duration

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

DEFAULT_PORTS = {
    "ticketing": 8000,
    "exporter": 9701,
    "prometheus": 9090,
    "alertmanager": 9093,
    "grafana": 3000,
    "platform": 8081,
    "redis": 6379,
    "smtp": 1025,
    "sinks": 8025,
    # --ha only
    "ticketing_b": 8001,
    "prometheus_b": 9091,
    "alertmanager_b": 9095,
    "alertmanager_gossip": 9094,
    "alertmanager_b_gossip": 9096,
    "victoriametrics": 8428,
}
#: The second of each replicated part under --ha (name -> the first's name).
REPLICAS = {
    "ticketing_b": "ticketing",
    "prometheus_b": "prometheus",
    "alertmanager_b": "alertmanager",
}


DEMO_ENDPOINT_DESCRIPTION = "demo partner endpoint (printed by the sinks)"


class Shutdown(Exception):
    """Raised by the signal handlers: stop the stack."""


# ------------------------------------------------------------------ durations

#: An exporter duration (``1m30s``, ``500ms``, ``15s``, a number) in seconds, read as
#: the exporter reads it: ``ValueError`` if it is not one.
duration_seconds = parse_duration


def capped(value: Any, limit: float) -> Any:
    """``value`` (an exporter duration) lowered to ``limit`` seconds when longer."""
    try:
        return format_duration(limit) if parse_duration(value) > limit else value
    except ValueError:
        return value


# ------------------------------------------------------------- config rendering
# Prometheus and Alertmanager configs are rendered by prometheus/render.py and
# alertmanager/render.py (shared with the tests); only the exporter's fast mode is ours.


def render_exporter(config: dict, *, fast: bool) -> dict:
    """The shipped exporter config; under ``fast``, collectors run every 2 s (the probe every 3 s).

    The probe keeps room for a slow API's 2 s answers (``slow-api``) within its
    timeout, which may not exceed its interval.
    """
    cfg = copy.deepcopy(config)
    if not fast:
        return cfg
    collectors = cfg.get("collectors") or {}
    queries = cfg.get("queries") or {}
    for name, section in [*collectors.items(), *[(None, q) for q in queries.values()]]:
        if not isinstance(section, dict):
            continue
        limit = 3 if name == "http_probe" else 2
        section["interval"] = capped(section.get("interval", "15s"), limit)
        if "timeout" in section:
            section["timeout"] = capped(section["timeout"], limit)
        for target in (section.get("targets") or {}).values():
            if isinstance(target, dict) and "timeout" in target:
                target["timeout"] = capped(target["timeout"], limit)
    return cfg


# ----------------------------------------------------------------------- stack


def find_grafana() -> list[str] | None:
    """The command that runs Grafana's server, when one is installed."""
    for name in ("grafana-server", "grafana"):
        path = shutil.which(name) or next(
            (
                p
                for p in (f"/usr/sbin/{name}", f"/usr/share/grafana/bin/{name}")
                if os.access(p, os.X_OK)
            ),
            None,
        )
        if path:
            return [path] if name == "grafana-server" else [path, "server"]
    return None


@dataclass
class Stack:
    run_dir: Path
    free_ports: bool = False
    fast: bool = False
    grafana: bool = True
    seed: int | None = None
    ha: bool = False
    #: Empty the run directory first instead of keeping the last run's data.
    fresh: bool = False
    root: Path = ROOT
    ports: dict[str, int] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    #: Signs the support console's sessions (never written to stack.json).
    console_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    notes: list[str] = field(default_factory=list)
    #: Whether this run continues the data of the last one (prepare_run_dir decides).
    kept: bool = False
    #: Whether the demo keys printed are the last run's (they still work).
    keys_kept: bool = False
    sup: Supervisor | None = None
    _reported: set[str] = field(default_factory=set)

    # ------------------------------------------------------------- helpers

    def say(self, message: str) -> None:
        print(message, flush=True)

    def port(self, name: str) -> int:
        default = DEFAULT_PORTS[name]
        taken = set(self.ports.values())
        if not self.free_ports and default not in taken and port_free(default):
            port = default
        else:
            port = free_port()
            while port in taken:
                port = free_port()
            if not self.free_ports:
                self.notes.append(f"{name}: port {default} is busy, using {port}")
        self.ports[name] = port
        return port

    def addr(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def replicas(self, name: str) -> list[str]:
        """``name`` and, under --ha, its second replica.

        ``ticketing`` -> ticketing, ticketing_b.
        """
        return [name, *[b for b, a in REPLICAS.items() if a == name and self.ha]]

    def addrs(self, name: str) -> list[str]:
        return [self.addr(n) for n in self.replicas(name) if n in self.ports]

    def write_state(self, ready: bool = False) -> None:
        children = self.sup.children if self.sup else []
        state = {
            "stack_pid": os.getpid(),
            "ready": ready,
            "run_dir": str(self.run_dir),
            "urls": self.urls,
            "ports": self.ports,
            "keys": self.keys,
            "pids": {c.name: c.pid for c in children if c.pid},
            "notifications": str(self.run_dir / "notifications.jsonl"),
        }
        path = self.run_dir / "stack.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.chmod(0o600)  # it holds the demo's API keys
        tmp.replace(path)

    @property
    def previous_state(self) -> Path:
        """The last run's ``stack.json``, moved aside while this run writes its own."""
        return self.run_dir / "stack.previous.json"

    def prepare_run_dir(self) -> None:
        """The run directory: the last run's data kept (``fresh``: emptied).

        Refuses a directory that belongs to a running stack or to someone else.
        Kept: the databases (platform, tickets, keys), Prometheus' and
        Alertmanager's data and the notifications record; the configs are
        rendered again and the ticket service's multiprocess metrics start empty.
        """
        state_file = self.run_dir / "stack.json"
        self.kept = False
        if state_file.exists():
            try:
                last = json.loads(state_file.read_text())
                pid, last_keys = last.get("stack_pid"), last.get("keys")
            except (ValueError, AttributeError):
                pid, last_keys = None, None
            if pid and pid != os.getpid() and _alive(pid):
                raise StartError(
                    f"a stack is already running from {self.run_dir} (pid {pid}); "
                    f"stop it first, or use --run-dir"
                )
            if self.fresh:
                shutil.rmtree(self.run_dir)
            else:
                self.kept = True
                # A run that stopped before its accounts were set up printed no keys:
                # the keys to print again are still those of the run before.
                if last_keys or not self.previous_state.exists():
                    state_file.replace(self.previous_state)
                else:
                    state_file.unlink()
                for stale in (self.run_dir / "ticketing").glob("metrics*"):
                    shutil.rmtree(stale)
        elif self.run_dir.exists() and any(self.run_dir.iterdir()):
            raise StartError(f"{self.run_dir} is not empty and is not a stack's run directory")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.sup = Supervisor(self.run_dir / "logs", cwd=self.root)

    def load_yaml(self, relative: str) -> dict:
        path = self.root / relative
        if not path.is_file():
            raise StartError(f"{relative} is missing")
        return yaml.safe_load(path.read_text()) or {}

    def dump_yaml(self, relative: str, data: dict) -> Path:
        path = self.run_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    # ---------------------------------------------------------- components

    def start_sinks(self) -> None:
        smtp, http = self.port("smtp"), self.port("sinks")
        self.sup.start(
            "sinks",
            [
                PY,
                "-m",
                "demo.sinks",
                "--smtp",
                f"127.0.0.1:{smtp}",
                "--http",
                f"127.0.0.1:{http}",
                "--record",
                self.run_dir / "notifications.jsonl",
            ],
            ready=http_ready(f"http://127.0.0.1:{http}/healthz"),
            console=True,
        )
        self.urls["sinks"] = f"http://127.0.0.1:{http}"
        self.urls["smtp"] = f"smtp://127.0.0.1:{smtp}"

    def start_redis(self) -> None:
        port = self.port("redis")
        binary = shutil.which("redis-server")
        if not binary:
            raise StartError("redis-server is not installed; ./dev deps installs it")
        data = self.run_dir / "redis"
        data.mkdir(exist_ok=True)
        self.sup.start(
            "redis",
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                data,
                "--protected-mode",
                "no",
            ],
            ready=tcp_ready("127.0.0.1", port),
        )
        self.urls["redis"] = f"redis://127.0.0.1:{port}/0"

    def start_platform(self) -> None:
        port = self.port("platform")
        cmd = [
            PY,
            "-m",
            "demo.platform",
            "--db",
            f"sqlite:///{self.run_dir / 'platform.db'}",
            "--listen",
            f"127.0.0.1:{port}",
        ]
        if self.seed is not None:
            cmd += ["--seed", str(self.seed)]
        self.sup.start("platform", cmd, ready=http_ready(f"http://127.0.0.1:{port}/healthz"))
        self.urls["platform"] = f"http://127.0.0.1:{port}"

    def ticketing_env(self) -> dict[str, str]:
        multiproc = self.run_dir / "ticketing" / "metrics"
        multiproc.mkdir(parents=True, exist_ok=True)
        env = {
            "TICKETING_DATABASE_URL": f"sqlite:///{self.run_dir / 'ticketing' / 'ticketing.db'}",
            "REDIS_URL": self.urls["redis"],
            "ALERTMANAGER_URL": ",".join(f"http://{a}" for a in self.addrs("alertmanager")),
            "PROMETHEUS_URL": f"http://127.0.0.1:{self.ports['prometheus']}",
            "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
            "TICKETING_WORKERS": os.environ.get("TICKETING_WORKERS", "2"),
            # Signs the console's sessions: the same for every worker of this run.
            "TICKETING_SECRET_KEY": self.console_secret,
        }
        return env

    def partner_webhooks_config(self) -> Path:
        """The ticket service's webhooks section: the receiver's token (shared with
        Alertmanager's partner-webhooks receiver) and the loopback demo endpoint allowed."""
        token = self.run_dir / "alertmanager" / "secrets" / "partner_webhooks_token"
        token.parent.mkdir(parents=True, exist_ok=True)
        if not token.exists():
            token.write_text(secrets.token_urlsafe(24) + "\n")
            token.chmod(0o600)
        return self.dump_yaml(
            "ticketing/ticketing.yml",
            {
                "webhooks": {
                    "require_https": False,
                    "allowed_networks": ["127.0.0.1/32"],
                    "receiver_token_file": str(token),
                }
            },
        )

    def register_partner_endpoint(self) -> None:
        """The demo partner's webhook endpoint: the sinks print what it receives.

        On kept data the endpoint is already registered: it is kept when its
        address is this run's, and replaced when the sinks moved to another port.
        """
        api = f"{self.urls['ticketing']}/api/v1/webhooks"
        headers = {"X-API-Key": self.keys["partner"]}
        url = f"{self.urls['sinks']}/partner/acme-energy"
        listed = requests.get(api, timeout=10, headers=headers)
        if listed.status_code != 200:
            raise StartError(f"listing the demo partner's webhooks failed: {listed.text}")
        endpoints = listed.json()["items"]  # the demo partner has one or two
        if any(e.get("url") == url for e in endpoints):
            return
        for old in endpoints:
            if old.get("description") == DEMO_ENDPOINT_DESCRIPTION:
                requests.delete(f"{api}/{old['id']}", timeout=10, headers=headers)
        response = requests.post(
            api,
            timeout=10,
            headers=headers,
            json={"url": url, "description": DEMO_ENDPOINT_DESCRIPTION},
        )
        if response.status_code != 201:
            raise StartError(f"registering the demo partner's webhook failed: {response.text}")

    def start_ticketing(self) -> None:
        port = self.port("ticketing")
        # Addresses the service needs are decided now, before those services start.
        for name in ("alertmanager", "prometheus"):
            for replica in self.replicas(name):
                self.port(replica)
        env = self.ticketing_env()
        env["TICKETING_CONFIG"] = str(self.partner_webhooks_config())
        setup = [PY, "-m", "demo.accounts"]
        if self.previous_state.exists():
            setup += ["--previous", str(self.previous_state)]
        accounts = json.loads(
            self.sup.run("ticketing-setup", setup, env=env).strip().splitlines()[-1]
        )
        self.keys["partner"] = accounts["partner_key"]
        self.keys["staff"] = accounts["staff_key"]
        self.keys_kept = bool(accounts.get("kept"))
        self.start_gunicorn("ticketing", port, env)
        if self.ha:
            port_b = self.port("ticketing_b")
            env_b = {
                **env,
                "PROMETHEUS_MULTIPROC_DIR": str(self.run_dir / "ticketing" / "metrics-b"),
            }
            Path(env_b["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
            self.start_gunicorn("ticketing_b", port_b, env_b)

    def start_gunicorn(self, name: str, port: int, env: dict[str, str]) -> None:
        env = {**env, "TICKETING_BIND": f"127.0.0.1:{port}"}
        # Its workers boot while the next parts start; wait_for_ticketing() waits for them.
        self.sup.start(
            name,
            [
                PY,
                "-m",
                "gunicorn",
                "--config",
                self.root / "ticketing" / "runtime" / "gunicorn.conf.py",
                "--bind",
                env["TICKETING_BIND"],
                "--no-control-socket",
                "ticketing:create_app()",
            ],
            env=env,
            ready=http_ready(f"http://127.0.0.1:{port}/readyz"),
            wait=False,
            # Like Ctrl-C on gunicorn in a terminal: its quick shutdown. The graceful
            # one (SIGTERM) waits out keep-alive and WebSocket connections.
            stop_signal=signal.SIGINT,
        )
        self.urls[name] = f"http://127.0.0.1:{port}"
        if name == "ticketing":
            self.urls["console"] = f"http://127.0.0.1:{port}/console/"

    def wait_for_ticketing(self) -> None:
        for name in self.replicas("ticketing"):
            self.sup.wait_ready(next(c for c in self.sup.children if c.name == name))
        self.register_partner_endpoint()

    def start_exporter(self) -> None:
        port = self.port("exporter")
        shipped = self.root / "exporter" / "partnerwatch.yml"
        config = shipped
        if self.fast:
            config = self.dump_yaml(
                "exporter/partnerwatch.yml",
                render_exporter(self.load_yaml("exporter/partnerwatch.yml"), fast=True),
            )
        elif not shipped.is_file():
            raise StartError("exporter/partnerwatch.yml is missing")
        env = {
            "PLATFORM_DB_URL": f"sqlite:///{self.run_dir / 'platform.db'}",
            "PLATFORM_API_URL": self.urls["platform"],  # the config probes <url>/healthz
            "TICKETING_DB_URL": f"sqlite:///{self.run_dir / 'ticketing' / 'ticketing.db'}",
            "REDIS_URL": self.urls["redis"],
            "EXPORTER_LISTEN": f"127.0.0.1:{port}",
        }
        self.sup.start(
            "exporter",
            [PY, "-m", "exporter", "--config", config, "--listen", f"127.0.0.1:{port}"],
            env=env,
            ready=http_ready(f"http://127.0.0.1:{port}/metrics"),
        )
        self.urls["exporter"] = f"http://127.0.0.1:{port}/metrics"

    def start_alertmanager(self) -> None:
        from alertmanager import render as am_render

        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        if not binary:
            raise StartError("Alertmanager is not installed; ./dev deps installs it")
        shipped = self.load_yaml("alertmanager/alertmanager.yml")
        sink = self.urls["sinks"]
        webhooks = {
            r["name"]: f"{sink}/webhook/{r['name']}"
            for r in shipped.get("receivers") or []
            if r.get("webhook_configs")
        }
        # Partner-scoped alerts go to the ticket service, which signs them for the partner;
        # platform alerts with a component open draft incidents on its status page.
        webhooks["partner-webhooks"] = (
            f"{self.urls['ticketing']}/internal/alertmanager/partner-alerts"
        )
        if "status-incidents" in webhooks:
            webhooks["status-incidents"] = (
                f"{self.urls['ticketing']}/internal/alertmanager/incidents"
            )
        secrets_dir = self.run_dir / "alertmanager" / "secrets"
        text = am_render.render(
            self.root / "alertmanager" / "alertmanager.yml",
            secrets_dir=secrets_dir,
            smtp_smarthost=self.addr("smtp"),
            smtp_require_tls=False,
            webhook_urls=webhooks,
            timings={"group_wait": "2s", "group_interval": "10s"} if self.fast else None,
        )
        self.write_secrets(yaml.safe_load(text), secrets_dir)
        config = self.run_dir / "alertmanager" / "alertmanager.yml"
        config.write_text(text)
        names = self.replicas("alertmanager")
        gossip = {name: self.port(f"{name}_gossip") for name in names} if self.ha else {}
        for name in names:
            port = self.ports.get(name) or self.port(name)
            cluster = ["--cluster.listen-address="]
            if self.ha:
                # Loopback gossip: the address must be given, Alertmanager does not advertise
                # a loopback one by itself.
                cluster = [
                    f"--cluster.listen-address=127.0.0.1:{gossip[name]}",
                    f"--cluster.advertise-address=127.0.0.1:{gossip[name]}",
                    *[f"--cluster.peer=127.0.0.1:{p}" for n, p in gossip.items() if n != name],
                ]
            self.sup.start(
                name,
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.path={self.run_dir / name / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    *cluster,
                    f"--web.external-url=http://127.0.0.1:{port}",
                ],
                ready=http_ready(f"http://127.0.0.1:{port}/-/ready"),
            )
            self.urls[name] = f"http://127.0.0.1:{port}"

    def write_secrets(self, node: Any, secrets_dir: Path) -> None:
        """Fill each secret file the config reads.

        Slack's URL is the sink's, the others get demo values.
        """
        if isinstance(node, dict):
            for key, value in node.items():
                if (
                    key.endswith("_file")
                    and isinstance(value, str)
                    and Path(value).parent == secrets_dir
                ):
                    path = Path(value)
                    if path.name == "partner_webhooks_token" and path.exists():
                        continue  # written with the ticket service, which reads it too
                    if "slack" in path.name:
                        content = f"{self.urls['sinks']}/slack"
                    elif path.name.endswith("_url"):
                        content = f"{self.urls['sinks']}/webhook/{path.name}"
                    else:
                        content = secrets.token_urlsafe(16)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(content + "\n")
                    path.chmod(0o600)
                else:
                    self.write_secrets(value, secrets_dir)
        elif isinstance(node, list):
            for item in node:
                self.write_secrets(item, secrets_dir)

    def start_victoria_metrics(self) -> None:
        """--ha: the long-term store both Prometheus replicas remote-write to."""
        port = self.port("victoriametrics")
        binary = shutil.which("victoria-metrics")
        if not binary:
            raise StartError("victoria-metrics is not installed; ./dev deps installs it")
        self.sup.start(
            "victoriametrics",
            [
                binary,
                f"-httpListenAddr=127.0.0.1:{port}",
                f"-storageDataPath={self.run_dir / 'victoriametrics'}",
                f"-dedup.minScrapeInterval={self.scrape_interval}",
            ],
            ready=http_ready(f"http://127.0.0.1:{port}/health"),
        )
        self.urls["victoriametrics"] = f"http://127.0.0.1:{port}"

    @property
    def scrape_interval(self) -> str:
        return "1s" if self.fast else "5s"

    def start_prometheus(self) -> None:
        from prometheus import render as prom_render

        binary = shutil.which("prometheus")
        if not binary:
            raise StartError("Prometheus is not installed; ./dev deps installs it")
        shipped = self.load_yaml("prometheus/prometheus.yml")
        jobs = [job["job_name"] for job in shipped.get("scrape_configs") or []]
        names = self.replicas("prometheus")
        for name in names:
            self.ports.get(name) or self.port(name)
        ours = {name: self.addrs(name) for name in jobs if name in self.ports}
        for name in sorted(set(jobs) - set(ours)):
            self.notes.append(f"Prometheus job {name!r} has no local target: it will show as down")
        for n, name in enumerate(names):
            port = self.ports[name]
            text = prom_render.render(
                self.root / "prometheus" / "prometheus.yml",
                targets=ours,
                alertmanagers=self.addrs("alertmanager"),
                rules_dir=self.root / "rules",
                scrape_interval=self.scrape_interval,
                evaluation_interval=self.scrape_interval,
                replica="ab"[n] if self.ha else None,
                remote_write=[self.urls["victoriametrics"] + "/api/v1/write"] if self.ha else None,
            )
            config = self.run_dir / name / "prometheus.yml"
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_text(text)
            self.sup.start(
                name,
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.run_dir / name / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--web.enable-lifecycle",
                    f"--web.external-url=http://127.0.0.1:{port}",
                ],
                ready=http_ready(f"http://127.0.0.1:{port}/-/ready"),
            )
            self.urls[name] = f"http://127.0.0.1:{port}"

    def start_grafana(self) -> None:
        command = find_grafana() if self.grafana else None
        if command is None:
            return  # the banner says where Grafana runs instead
        port = self.port("grafana")
        home = next((p for p in ("/usr/share/grafana", "/opt/grafana") if Path(p).is_dir()), None)
        data = self.run_dir / "grafana"
        self.keys["grafana_admin"] = secrets.token_urlsafe(12)
        env = {
            "GF_PATHS_DATA": str(data / "data"),
            "GF_PATHS_LOGS": str(data / "logs"),
            "GF_PATHS_PLUGINS": str(data / "plugins"),
            "GF_PATHS_PROVISIONING": str(self.root / "grafana" / "provisioning"),
            "GF_SERVER_HTTP_ADDR": "127.0.0.1",
            "GF_SERVER_HTTP_PORT": str(port),
            "GF_SECURITY_ADMIN_USER": "admin",
            "GF_SECURITY_ADMIN_PASSWORD": self.keys["grafana_admin"],
            "GF_AUTH_ANONYMOUS_ENABLED": "true",
            "GF_AUTH_ANONYMOUS_ORG_ROLE": "Viewer",
            "GF_USERS_ALLOW_SIGN_UP": "false",
            "GF_ANALYTICS_REPORTING_ENABLED": "false",
            "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
            "GF_NEWS_NEWS_FEED_ENABLED": "false",
            "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH": str(
                self.root / "grafana" / "dashboards" / "platform-overview.json"
            ),
            "PROMETHEUS_URL": self.urls["prometheus"],
            # The second datasource; without --ha nothing answers there.
            "VICTORIAMETRICS_URL": self.urls.get(
                "victoriametrics", f"http://127.0.0.1:{DEFAULT_PORTS['victoriametrics']}"
            ),
            "PARTNERWATCH_DASHBOARDS_DIR": str(self.root / "grafana" / "dashboards"),
        }
        cmd = [*command] + ([f"--homepath={home}"] if home else [])
        self.sup.start(
            "grafana",
            cmd,
            env=env,
            timeout=120,
            ready=http_ready(f"http://127.0.0.1:{port}/api/health"),
        )
        self.urls["grafana"] = f"http://127.0.0.1:{port}"

    # ----------------------------------------------------------------- run

    def start(self) -> None:
        self.prepare_run_dir()
        steps = [
            ("notification sinks", self.start_sinks),
            ("Redis", self.start_redis),
            ("demo platform", self.start_platform),
            ("ticket service (migrations, demo accounts)", self.start_ticketing),
            ("exporter", self.start_exporter),
            ("Alertmanager" + (" cluster (2)" if self.ha else ""), self.start_alertmanager),
            *([("VictoriaMetrics", self.start_victoria_metrics)] if self.ha else []),
            # Prometheus last, once every target answers: its first scrapes find them up
            # (no TargetDown pending at start).
            ("ticket service (gunicorn workers)", self.wait_for_ticketing),
            ("Prometheus" + (" HA pair" if self.ha else ""), self.start_prometheus),
            ("Grafana", self.start_grafana),
        ]
        for label, step in steps:
            if label == "Grafana" and not (self.grafana and find_grafana()):
                step()  # only notes why it is not there
                continue
            started = time.monotonic()
            print(f"starting {label} ...", end="", flush=True)
            try:
                step()
            finally:
                self.say(f" {time.monotonic() - started:.1f}s")
            self.write_state()
        self.wait_for_targets()
        self.write_state(ready=True)
        self.banner()

    def wait_for_targets(self, timeout: float = 90.0) -> None:
        """Until Prometheus scrapes every target successfully (or ``timeout``)."""
        url = self.urls["prometheus"] + "/api/v1/targets"
        deadline = time.monotonic() + timeout
        targets: list[dict] = []
        while time.monotonic() < deadline:
            try:
                targets = requests.get(url, timeout=5).json()["data"]["activeTargets"]
            except (requests.RequestException, ValueError, KeyError):
                targets = []
            if targets and all(t.get("health") == "up" for t in targets):
                self.say(
                    f"all {len(targets)} Prometheus targets are up "
                    f"({time.monotonic() - deadline + timeout:.1f}s)"
                )
                return
            time.sleep(0.5)
        down = [
            f"{t['labels'].get('job')} ({t.get('lastError') or t.get('health')})"
            for t in targets
            if t.get("health") != "up"
        ]
        self.notes.append("targets not up yet: " + (", ".join(down) or "none found"))

    def banner_lines(self) -> list[str]:
        """What the banner says: where each part answers, what to open first, what to try."""
        u = self.urls
        keys_note = "the same keys as last time" if self.keys_kept else "new keys"
        if self.kept:
            data = (
                f"  data              kept from the last run in {self.run_dir} "
                "(tickets, keys, platform history, metrics); ./dev run --fresh starts empty"
            )
        else:
            data = (
                f"  data              new and empty in {self.run_dir} "
                "(the next ./dev run keeps it; --fresh empties it)"
            )
        lines = [
            "",
            "partnerwatch is running"
            + (" (fast intervals)" if self.fast else "")
            + (" as an HA pair of everything" if self.ha else ""),
            data,
            f"  ticket API        {u['ticketing']}/api/v1   "
            f"(OpenAPI docs: {u['ticketing']}/api/docs)",
            f"    partner key     {self.keys.get('partner')}   ({keys_note})",
            f"    staff key       {self.keys.get('staff')}",
            f"  support console   {u['console']}   (sign in with the staff key)",
            f"  exporter          {u['exporter']}",
            # Debian's Prometheus ships only the classic pages; its Alertmanager no web UI.
            f"  Prometheus        {u['prometheus']}   (alerts: {u['prometheus']}/classic/alerts)",
            f"  Alertmanager      {u['alertmanager']}   (API only: amtool --alertmanager.url="
            f"{u['alertmanager']} alert query, or {u['alertmanager']}/api/v2/alerts)",
        ]
        if self.ha:
            lines += [
                f"  ticket API (2nd)  {u['ticketing_b']}/api/v1   (same database and Redis)",
                f"  Prometheus (b)    {u['prometheus_b']}   (replica b; a is the one above)",
                f"  Alertmanager (2nd) {u['alertmanager_b']}   (one cluster with the one above)",
                f"  VictoriaMetrics   {u['victoriametrics']}   (both replicas, de-duplicated)",
            ]
        if "grafana" in u:
            lines.append(
                f"  Grafana           {u['grafana']}   (admin / {self.keys['grafana_admin']})"
            )
        else:
            lines += [
                "  Grafana           not run here"
                + (" (--no-grafana)" if not self.grafana else " (Debian has no Grafana package)")
                + ": docker-compose.yml runs it on port 3000 with the five dashboards",
                "                    (cp .env.example .env, set the passwords, "
                "docker-compose --profile demo up -d --build; docs/deployment.md);"
                " what each panel shows: docs/dashboards.md",
            ]
        lines += [
            f"  demo platform     {u['platform']}/healthz   (state: {u['platform']}/control/state)",
            f"  Redis             {u['redis']}",
            f"  notification sinks  SMTP {u['smtp']}, HTTP {u['sinks']} (printed below, "
            f"and recorded in {self.run_dir / 'notifications.jsonl'})",
            f"  logs              {self.run_dir / 'logs'}",
            *[f"  note: {note}" for note in self.notes],
            "",
            "Open first: the support console (the staff key signs in) and Prometheus' alerts page.",
            "Until a scenario runs only the Watchdog heartbeat fires: a HEARTBEAT line "
            + ("about every 70 seconds" if self.fast else "every 2 minutes")
            + " below.",
            "Make something happen (in another terminal; docs/demo.md says what each fires):",
            "  .venv/bin/python -m demo scenario drain-energy     "
            "# energy pool under 20 %: EnergyPoolCritical after 1 minute",
            "  .venv/bin/python -m demo scenario "
            "slow-api | fail-transactions | fail-partner | attack-tickets",
            "  .venv/bin/python -m demo scenario recover",
            *(
                [f"  (this run directory is not ./run: add --run-dir {self.run_dir})"]
                if self.run_dir.resolve() != (self.root / "run").resolve()
                else []
            ),
            "Ctrl-C stops everything.",
            "",
        ]
        return lines

    def banner(self) -> None:
        self.say("\n".join(self.banner_lines()))

    def watch(self) -> None:
        """Until a signal arrives: report any component that stops on its own."""
        while True:
            for child in self.sup.exited():
                if child.name in self._reported:
                    continue
                self._reported.add(child.name)
                self.say(
                    f"!! {child.name} stopped on its own (exit code {child.popen.returncode});"
                    f" the rest keeps running. Last lines of {child.log_path}:\n"
                    f"{_indent(child.tail(1500))}"
                )
            time.sleep(1)

    def stop(self) -> None:
        if self.sup is None:
            return
        self.say("stopping ...")
        self.sup.stop_all(
            report=lambda child, took: self.say(f"  {child.name} stopped ({took:.1f}s)")
        )
        try:
            self.write_state()
        except OSError:
            pass
        self.say("stopped.")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip().splitlines())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev run", description="Run the whole stack locally.")
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=ROOT / "run",
        help="where configs, data, logs and stack.json go (default ./run; "
        "the last run's data there is kept unless --fresh)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start with an empty run directory instead of the last run's data",
    )
    parser.add_argument(
        "--free-ports", action="store_true", help="use free ports instead of the usual ones"
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help="1 s scrapes, evaluations and collector runs; short Alertmanager "
        "group waits (the rules' thresholds and for: are unchanged)",
    )
    parser.add_argument(
        "--no-grafana",
        dest="grafana",
        action="store_false",
        help="do not start Grafana even when it is installed",
    )
    parser.add_argument("--seed", type=int, help="random seed for the demo platform")
    parser.add_argument(
        "--ha",
        action="store_true",
        help="two of everything: ticket-service instances, an Alertmanager "
        "cluster, a Prometheus HA pair, and VictoriaMetrics",
    )
    args = parser.parse_args(argv)

    stack = Stack(
        args.run_dir.resolve(),
        free_ports=args.free_ports,
        fast=args.fast,
        grafana=args.grafana,
        seed=args.seed,
        ha=args.ha,
        fresh=args.fresh,
    )

    def on_signal(signum, _frame):
        raise Shutdown(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    try:
        stack.start()
        stack.watch()
    except Shutdown:
        pass
    except StartError as exc:
        print(f"the stack could not start: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        # A second Ctrl-C must not interrupt the clean-up.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
