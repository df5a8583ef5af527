"""Every dashboard query is valid PromQL and shows data from the real stack.

The module starts what the dashboards look at, each the real program, on
loopback ports: the exporter (its shipped configuration, with 1 s intervals)
over a SQLite platform database that keeps getting transactions and an HTTP
health endpoint; the ticket service under gunicorn with two workers on
PostgreSQL and Redis; Alertmanager; a process using the profiler; and a
Prometheus scraping all of them every second with the project's rules loaded.

Then it drives what partners, staff and attackers do: tickets in several
categories and priorities, partner messages, staff replies and resolutions, a
ticket left past its first-response target, another partner's ticket asked for,
attack strings, bad API keys until the failed-login escalation, ticket creation
beyond its rate limit, a ticket created while Alertmanager is still down
(its notification fails first, then is delivered), and an outage: platform alerts
open two incidents, tickets about them are linked, answered in bulk and resolved
with one of them.

Each panel query is then sent the way Grafana sends it ("All" for every
variable) and must return at least one series with a real number. Queries are
polled until a shared deadline, since rates need two samples and recording
rules an evaluation.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import requests
import yaml

from tests.harness import (
    HTTPSink,
    ManagedProcess,
    ProcessGroup,
    free_port,
    http_ready,
    start_alertmanager,
    start_prometheus,
    wait_until,
)
from tests.harness.app import create_test_app
from tests.harness.dashboards import BUILTIN_VARIABLES, PanelQuery, panel_queries, variable_queries
from tests.harness.platform_activity import PlatformActivity, create_platform_db

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# How long, after the traffic, the queries may take to show data.
DATA_DEADLINE = 90.0

# Series the first wave of traffic creates; the second wave waits for them.
SERIES_AFTER_FIRST_WAVE = [
    "support_ticket_first_response_seconds_count",
    "support_ticket_resolution_seconds_count",
    'support_ticket_messages_total{sender_type="staff"}',
    "support_tickets_created_total",
    'security_events_total{type="UNAUTHORIZED_ACCESS"}',
    'security_events_total{type="SUSPICIOUS_PATTERN"}',
    "ratelimit_rejections_total",
]

# Panels that must show the traffic itself (a value above zero), not only series.
MUST_MOVE = {
    ("partnerwatch-platform", "Platform API"),
    ("partnerwatch-platform", "Active partners"),
    ("partnerwatch-platform", "Transactions by status"),
    ("partnerwatch-platform", "Energy pool available"),
    ("partnerwatch-support", "Open tickets"),
    ("partnerwatch-support", "First response overdue"),
    ("partnerwatch-support", "Critical tickets open"),
    ("partnerwatch-support", "Critical tickets unassigned"),
    ("partnerwatch-support", "Tickets created by category"),
    ("partnerwatch-support", "Messages"),
    ("partnerwatch-support", "First-response time"),
    ("partnerwatch-support", "Resolution time"),
    ("partnerwatch-support", "Ticket API requests"),
    ("partnerwatch-security", "Security events by type"),
    ("partnerwatch-security", "Security events (1 h)"),
    ("partnerwatch-security", "Rate-limit rejections by action"),
    ("partnerwatch-operations", "Calls by operation"),
    ("partnerwatch-operations", "Errors by operation"),
    ("partnerwatch-operations", "Slow calls by operation"),
    ("partnerwatch-stack", "Scrape targets"),
    ("partnerwatch-stack", "Exporter collectors"),
    ("partnerwatch-stack", "Alertmanager notifications sent"),
    ("partnerwatch-support", "SLA paused"),
    ("partnerwatch-support", "Tickets linked to incidents (24 h)"),
    ("partnerwatch-support", "Replies sent in bulk (24 h)"),
    ("partnerwatch-support", "Tickets per resolved incident (7 d)"),
    ("partnerwatch-support", "SLA time paused (24 h)"),
}

# Queries allowed to return nothing in a healthy stack: checked for validity only.
# (dashboard uid, panel title, refId) -> why.
MAY_BE_EMPTY: dict[tuple[str, str, str], str] = {}

# Ticketing settings for the test: fast outbox retries, limits low enough to hit.
TICKETING_SETTINGS = {
    "outbox": {
        "poll_interval": "200ms",
        "initial_backoff": "200ms",
        "max_backoff": "1s",
        "request_timeout": "2s",
    },
    # The partner's webhook endpoint is the loopback sink (refused by default).
    "webhooks": {
        "require_https": False,
        "allowed_networks": ["127.0.0.1/32"],
        "initial_backoff": "200ms",
        "max_backoff": "1s",
    },
    "ratelimits": {"limits": {"ticket_create": "12/minute"}},
    "live": {"enabled": False},
    # As behind a reverse proxy: the intruder's address comes from X-Forwarded-For,
    # so locking it out does not lock out the partners on the same loopback address.
    "security": {"trusted_proxies": ["127.0.0.1"]},
    # Critical platform alerts publish their incident at once (no console step here).
    "status": {"auto_publish": ["critical"]},
}
#: The bearer token the test sends to the status receiver, as Alertmanager would.
STATUS_TOKEN = "status-receiver-token-for-the-dashboards-test"
INTRUDER = {"X-Forwarded-For": "203.0.113.7"}


@dataclass
class Stack:
    prometheus: object
    ticketing_url: str
    ready_at: float


def exporter_config(path: Path, listen: str) -> Path:
    """The shipped exporter configuration with 1 s intervals, written to ``path``."""
    config = yaml.safe_load((ROOT / "exporter" / "partnerwatch.yml").read_text())
    config["exporter"]["listen"] = listen
    config["exporter"]["staleness"] = "30s"
    schedules = list(config["collectors"].values()) + list(config["queries"].values())
    for schedule in schedules:
        schedule["interval"] = "1s"
        schedule["timeout"] = "1s"
    for target in config["collectors"]["http_probe"]["targets"].values():
        target.pop("timeout", None)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def alertmanager_config(webhook_url: str) -> dict:
    return {
        "route": {
            "receiver": "oncall",
            "group_by": ["alertname"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "oncall", "webhook_configs": [{"url": webhook_url}]}],
    }


def metrics_text(url: str) -> str:
    try:
        return requests.get(url, timeout=5).text
    except requests.RequestException:
        return ""


def has_sample(text: str, name: str) -> bool:
    """Whether ``name`` has a sample above zero in a /metrics text."""
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            try:
                if float(line.rsplit(" ", 1)[1]) > 0:
                    return True
            except ValueError:
                pass
    return False


class TicketApi:
    """The ticket API as a partner, a staff member or an anonymous client sees it."""

    def __init__(self, base: str, key: str | None = None):
        self.base = base
        self.session = requests.Session()
        if key:
            self.session.headers["X-API-Key"] = key

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        response = self.session.request(method, self.base + path, timeout=10, **kwargs)
        assert response.status_code < 500, (
            f"{method} {path}: {response.status_code} {response.text}"
        )
        return response

    def create_ticket(self, title: str, description: str, **extra) -> requests.Response:
        return self.request(
            "POST", "/api/v1/tickets", json={"title": title, "description": description, **extra}
        )


def prepare_ticketing(db_url: str, settings: Path) -> dict[str, str]:
    """Migrate the database and create three partners and a staff member with the CLI.

    Returns their API keys by role. The commands run in this process through
    Flask's CLI runner (one app instead of one process per command).
    """

    app = create_test_app(
        {
            "SQLALCHEMY_DATABASE_URI": db_url,
            "TICKETING_CONFIG": str(settings),
            "TICKETING": {"outbox": {"worker": False}},
        },
        migrate=False,
    )
    runner = app.test_cli_runner()

    def run(*args: str) -> str:
        result = runner.invoke(args=list(args))
        assert result.exit_code == 0, f"{args}: {result.output}"
        lines = result.stdout.strip().splitlines()
        return lines[-1] if lines else ""

    run("db", "upgrade")
    people = {
        "partner": ("partner", run("create-partner", "Acme Energy")),
        "other": ("partner", run("create-partner", "Borealis Grid")),
        "outage": ("partner", run("create-partner", "Cedar Power")),
        "staff": ("staff", run("create-staff", "Sam Agent", "sam@example.org")),
    }
    keys = {who: run("create-key", f"--{kind}", ident) for who, (kind, ident) in people.items()}
    with app.app_context():
        from ticketing.db import db

        db.engine.dispose()
    return keys


def answer_and_resolve(partner: TicketApi, staff: TicketApi, tag: str) -> None:
    """A medium ticket answered by staff, and an urgent one answered and resolved."""
    answered = partner.create_ticket(
        f"Invoice {tag} charged twice", "We were billed twice for the March invoice."
    )
    urgent = partner.create_ticket(
        f"URGENT: webhook endpoint returns 500 ({tag})",
        "Our webhook endpoint gets HTTP 500 errors.",
    )
    assert answered.status_code == urgent.status_code == 201, (answered.text, urgent.text)
    answered, urgent = answered.json()["id"], urgent.json()["id"]
    partner.request(
        "POST", f"/api/v1/tickets/{answered}/messages", json={"body": "Any news on this one?"}
    )
    for ticket in (answered, urgent):
        response = staff.request(
            "POST",
            f"/api/v1/staff/tickets/{ticket}/messages",
            json={"body": "We are on it and will report back."},
        )
        assert response.status_code == 201, response.text
    for status in ("in_progress", "resolved"):
        response = staff.request(
            "POST", f"/api/v1/staff/tickets/{urgent}/status", json={"status": status}
        )
        assert response.status_code == 200, response.text


def platform_alert(component: str, alertname: str, fingerprint: str) -> dict:
    """A firing critical platform alert, as Alertmanager's webhook sends it."""
    return {
        "version": "4",
        "groupKey": f'{{}}:{{component="{component}"}}',
        "status": "firing",
        "receiver": "status-incidents",
        "alerts": [
            {
                "status": "firing",
                "fingerprint": fingerprint,
                "startsAt": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                "endsAt": "0001-01-01T00:00:00Z",
                "labels": {"alertname": alertname, "severity": "critical", "component": component},
                "annotations": {"summary": f"{alertname} on {component}"},
            }
        ],
    }


def outage_and_its_tickets(
    api: str, partner: TicketApi, staff: TicketApi, first: TicketApi
) -> None:
    """Two platform alerts open (and publish) two incidents; tickets filed about them are
    linked (one by hand), an update is sent to them all, one incident resolves with its
    tickets and a closing message, the other stays open with its ticket's clock paused."""
    receiver = requests.Session()
    receiver.headers["Authorization"] = f"Bearer {STATUS_TOKEN}"
    opened = []
    for component, alertname, fingerprint in (
        ("transactions", "TransactionFailureRatioHigh", "dash-tx"),
        ("energy-pool", "EnergyPoolCritical", "dash-energy"),
    ):
        answer = receiver.post(
            api + "/internal/alertmanager/incidents",
            json=platform_alert(component, alertname, fingerprint),
            timeout=10,
        )
        assert answer.status_code == 200 and answer.json()["opened"] == 1, answer.text
    for title, description in (
        ("Transactions stuck in pending", "Our payouts are stuck in pending since 10:00."),
        ("Transfers not settling", "Every transfer stays pending, nothing settles."),
        ("Energy purchase refused", "The energy pool refuses our purchase: insufficient."),
    ):
        response = partner.create_ticket(title, description)
        assert response.status_code == 201, response.text
        incident = response.json()["incident"]
        assert incident is not None, (title, response.json())
        opened.append((incident["id"], response.json()["id"]))
    transactions = opened[0][0]
    energy = opened[2][0]
    # One more ticket about the outage, linked by hand.
    by_hand = partner.create_ticket("Question", "Is the problem from this morning known?")
    assert by_hand.status_code == 201, by_hand.text
    linked = staff.request(
        "PUT",
        f"/api/v1/staff/tickets/{by_hand.json()['id']}/incident",
        json={"incident_id": transactions},
    )
    assert linked.status_code == 200, linked.text
    settings = staff.request(
        "PATCH",
        f"/api/v1/staff/incidents/{transactions}",
        json={"closing_message": "Every pending transaction has settled."},
    )
    assert settings.status_code == 200, settings.text
    # Paused time is counted in whole seconds: let the clocks stand still for some.
    time.sleep(2)
    for status, body, reply in (
        ("identified", "A settlement worker stalled; restarting it.", True),
        ("resolved", "Settlement is back to normal.", False),
    ):
        posted = staff.request(
            "POST",
            f"/api/v1/staff/incidents/{transactions}/updates",
            json={"status": status, "body": body, "reply_to_tickets": reply},
        )
        assert posted.status_code == 201, posted.text
    # The three above, and any ticket filed earlier in the run about failing transactions
    # (linked when the incident was published).
    assert posted.json()["tickets_resolved"] >= 3, posted.text
    # The first partner's critical "all transactions failing" ticket was linked when the
    # incident was published and resolved with it; its partner is not convinced and
    # reopens it, as every partner may.
    resolved = first.request(
        "GET", "/api/v1/tickets", params={"status": "resolved", "priority": "critical"}
    )
    reopened = [
        first.request("POST", f"/api/v1/tickets/{t['id']}/reopen")
        for t in resolved.json()["items"]
        if (t["incident"] or {}).get("id") == transactions
    ]
    assert reopened and all(r.status_code == 200 for r in reopened), resolved.text
    assert energy != transactions


def drive_support_traffic(
    api: str, partner: TicketApi, other: TicketApi, staff: TicketApi, db_url: str
) -> None:
    """What partners, staff and attackers do in a few minutes of a normal day."""
    texts = [
        ("Energy pool allocation", "Please raise our pool allocation by 200 units."),
        ("Outage", "All transactions failing since 10:00, production down."),
        ("Question about the API", "Which status code does the API return on a retry?"),
    ]
    created = []
    for title, description in texts:
        response = partner.create_ticket(title, description)
        assert response.status_code == 201, response.text
        created.append(response.json()["id"])
    overdue = created[0]

    # A ticket past its first-response target (as if created yesterday).
    past = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=1)
    with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute("UPDATE tickets SET first_response_due_at = %s WHERE id = %s", (past, overdue))

    # Another partner asks for a ticket that is not theirs: 404, UNAUTHORIZED_ACCESS.
    assert other.request("GET", f"/api/v1/tickets/{overdue}").status_code == 404
    # Attack strings: SUSPICIOUS_PATTERN (recorded, a body is never refused).
    other.create_ticket("Login problem", "name=' OR 1=1 -- and <script>alert(1)</script>")
    other.request("GET", "/api/v1/tickets", params={"status": "open' UNION SELECT password--"})
    # Bad keys until the failed-login escalation (MULTIPLE_FAILED_LOGINS) and the login limit.
    intruder = TicketApi(api, "pw_live_0000000000000000000000000000")
    intruder.session.headers.update(INTRUDER)
    for _ in range(8):
        intruder.request("GET", "/api/v1/tickets")
    # Ticket creation beyond its limit: 429 and RATE_LIMIT_EXCEEDED.
    statuses = [
        other.create_ticket(f"Meter reading {n}", "Monthly meter reading attached.").status_code
        for n in range(14)
    ]
    assert 429 in statuses, statuses


def attack_again(api: str, other: TicketApi) -> None:
    """More of the same: another partner's ticket, an attack string, a bad key."""
    other.request("GET", "/api/v1/tickets/1")
    other.request("GET", "/api/v1/tickets", params={"status": "<script>alert(2)</script>"})
    assert other.create_ticket("Meter reading", "Attached.").status_code == 429
    intruder = TicketApi(api, "pw_live_1111111111111111111111111111")
    intruder.session.headers.update(INTRUDER)
    assert intruder.request("GET", "/api/v1/tickets").status_code == 429


class BackgroundTraffic:
    """Partners reading their tickets every few hundred milliseconds, until stopped."""

    def __init__(self, api: TicketApi, interval: float = 0.3):
        self.api = api
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="ticket-readers")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.api.session.get(self.api.base + "/api/v1/tickets", timeout=5)
            except requests.RequestException:
                pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)
        self.api.session.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, postgres_server, redis_server):
    workdir = tmp_path_factory.mktemp("dashboards")
    group = ProcessGroup()
    with ExitStack() as cleanup:
        cleanup.callback(group.stop_all)

        # The platform: a database that keeps moving and a health endpoint.
        platform_db = workdir / "platform.db"
        create_platform_db(platform_db)
        cleanup.enter_context(PlatformActivity(platform_db, interval=0.2))
        platform_api = cleanup.enter_context(HTTPSink())
        webhook = cleanup.enter_context(HTTPSink())

        # The ticket service: migrations, people and keys, then gunicorn.
        db_url = postgres_server.create_database()
        am_port = free_port()  # Alertmanager starts later: first deliveries fail
        settings = workdir / "ticketing.yml"
        settings.write_text(yaml.safe_dump(TICKETING_SETTINGS))
        ticketing_port = free_port()
        env = {
            **os.environ,
            "TICKETING_DATABASE_URL": db_url,
            "TICKETING_CONFIG": str(settings),
            "REDIS_URL": redis_server.url,
            "ALERTMANAGER_URL": f"http://127.0.0.1:{am_port}",
            "TICKETING_BIND": f"127.0.0.1:{ticketing_port}",
            "TICKETING_WORKERS": "2",
            "STATUS_RECEIVER_TOKEN_FILE": str(workdir / "status-token"),
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / "ticketing-metrics"),
        }
        (workdir / "ticketing-metrics").mkdir()
        (workdir / "status-token").write_text(STATUS_TOKEN + "\n")
        redis_server.client().flushall()
        keys = prepare_ticketing(db_url, settings)
        ticketing_url = f"http://127.0.0.1:{ticketing_port}"
        ticketing = group.add(
            ManagedProcess(
                [BIN / "gunicorn", "--config", ROOT / "ticketing" / "runtime" / "gunicorn.conf.py"],
                workdir,
                name="ticketing",
                env=env,
            )
        )
        ticketing.start(ready=http_ready(ticketing_url + "/healthz"), timeout=60)
        # At the end, gunicorn's quick shutdown: graceful stops are not what is tested here.
        cleanup.callback(ticketing.signal, signal.SIGINT)

        # The exporter with the shipped configuration.
        exporter_addr = f"127.0.0.1:{free_port()}"
        exporter_env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PLATFORM_DB_URL": f"sqlite:///{platform_db}",
            "PLATFORM_API_URL": platform_api.url,
            "TICKETING_DB_URL": db_url,
            "REDIS_URL": redis_server.url,
        }
        exporter = group.add(
            ManagedProcess(
                [
                    sys.executable,
                    "-m",
                    "exporter",
                    "--config",
                    exporter_config(workdir / "exporter.yml", exporter_addr),
                ],
                workdir,
                name="exporter",
                env=exporter_env,
            )
        )
        exporter.start(ready=http_ready(f"http://{exporter_addr}/metrics"), timeout=60)

        # A process using the profiler.
        worker_port = free_port()
        worker = group.add(
            ManagedProcess(
                [sys.executable, "-m", "tests.dashboards.profiled_worker", "--port", worker_port],
                workdir,
                name="profiled-worker",
                env={"PYTHONPATH": str(ROOT)},
            )
        )
        worker.start(ready=http_ready(f"http://127.0.0.1:{worker_port}/metrics"))

        # Prometheus with the project's rules, every second.
        prom_port = free_port()
        jobs = {
            "prometheus": f"127.0.0.1:{prom_port}",
            "alertmanager": f"127.0.0.1:{am_port}",
            "exporter": exporter_addr,
            "ticketing": f"127.0.0.1:{ticketing_port}",
            "profiled-worker": f"127.0.0.1:{worker_port}",
        }
        prometheus = start_prometheus(
            workdir,
            [
                {"job_name": job, "static_configs": [{"targets": [addr]}]}
                for job, addr in jobs.items()
            ],
            rule_files=sorted((ROOT / "rules").glob("*.rules.yml")),
            alertmanagers=[f"127.0.0.1:{am_port}"],
            port=prom_port,
        )
        cleanup.callback(prometheus.stop)

        partner = TicketApi(ticketing_url, keys["partner"])
        other = TicketApi(ticketing_url, keys["other"])
        staff = TicketApi(ticketing_url, keys["staff"])

        # The partner's own endpoint: ticket events (status changes, public replies)
        # are delivered to it, so the partner-webhook panels have data.
        registered = partner.request(
            "POST", "/api/v1/webhooks", json={"url": webhook.url + "/partner"}
        )
        assert registered.status_code == 201, registered.text

        # Alertmanager is down: the new ticket's notification fails, then is retried.
        created = partner.create_ticket("Cannot log in", "The portal rejects our login.")
        assert created.status_code == 201, created.text
        wait_until(
            lambda: has_sample(
                metrics_text(ticketing_url + "/metrics"), "notifications_failed_total"
            ),
            timeout=30,
            message="a failed notification attempt",
        )
        alertmanager = start_alertmanager(
            workdir, alertmanager_config(webhook.url + "/hook"), port=am_port
        )
        cleanup.callback(alertmanager.stop)

        # Two waves a scrape apart: a labelled series appears with its first event,
        # so only what happens after Prometheus has seen it shows as a rate.
        answer_and_resolve(partner, staff, "wave 1")
        drive_support_traffic(ticketing_url, partner, other, staff, db_url)
        for series in SERIES_AFTER_FIRST_WAVE:
            prometheus.wait_for(series, timeout=30)
        answer_and_resolve(partner, staff, "wave 2")
        outage_and_its_tickets(
            ticketing_url, TicketApi(ticketing_url, keys["outage"]), staff, partner
        )
        attack_again(ticketing_url, other)
        cleanup.enter_context(BackgroundTraffic(partner))
        wait_until(
            lambda: has_sample(
                metrics_text(ticketing_url + "/metrics"), "notifications_delivered_total"
            ),
            timeout=30,
            message="the outbox delivering to Alertmanager",
        )
        yield Stack(prometheus, ticketing_url, time.monotonic())


def finite_values(result: list[dict]) -> list[float]:
    values = []
    for series in result:
        points = [series["value"]] if "value" in series else series.get("values", [])
        values += [float(v) for _, v in points if math.isfinite(float(v))]
    return values


QUERIES = list(panel_queries())


def test_there_are_queries_to_check():
    assert len(QUERIES) > 50
    assert {q.dashboard for q in QUERIES} == {
        "partnerwatch-platform",
        "partnerwatch-support",
        "partnerwatch-security",
        "partnerwatch-operations",
        "partnerwatch-stack",
    }


def test_lists_name_real_panels():
    known = {(q.dashboard, q.panel, q.ref_id) for q in QUERIES}
    assert set(MAY_BE_EMPTY) <= known
    assert MUST_MOVE <= {(d, p) for d, p, _ in known}


@pytest.mark.parametrize("query", QUERIES, ids=str)
def test_panel_query_returns_data(stack, query: PanelQuery):
    prom = stack.prometheus
    # Valid PromQL: Prometheus answers with an error otherwise (raised by .query()).
    prom.query(query.promql)
    if not query.instant:
        end = time.time()
        prom.api("query_range", query=query.promql, start=end - 60, end=end, step=5)
    if (query.dashboard, query.panel, query.ref_id) in MAY_BE_EMPTY:
        return
    last: list[dict] = []

    must_move = (query.dashboard, query.panel) in MUST_MOVE

    def has_data() -> bool:
        nonlocal last
        last = prom.query(query.promql)
        values = finite_values(last)
        return bool(values) and (not must_move or max(values) > 0)

    remaining = max(5.0, stack.ready_at + DATA_DEADLINE - time.monotonic())
    try:
        wait_until(has_data, timeout=remaining, interval=0.5, message=query.promql)
    except TimeoutError:
        what = "no value above zero" if must_move and finite_values(last) else "no data"
        pytest.fail(f"{query}: {what} for {query.promql!r}; last result: {last}")


@pytest.mark.parametrize("variable", list(variable_queries()), ids=lambda v: f"{v[0]}/{v[1]}")
def test_template_variable_has_values(stack, variable):
    dashboard, name, metric, label = variable
    promql = f"count by ({label}) ({metric})"
    result = stack.prometheus.wait_for(
        promql,
        lambda r: any(s["metric"].get(label) for s in r),
        timeout=max(5.0, stack.ready_at + DATA_DEADLINE - time.monotonic()),
    )
    assert all(s["metric"].get(label) for s in result)


def test_builtin_variables_cover_what_dashboards_use():
    used = set()
    for q in QUERIES:
        used |= {
            name for name in ("__rate_interval", "__interval", "__range") if f"${name}" in q.expr
        }
    assert used <= set(BUILTIN_VARIABLES)
