"""An alert storm: every partner's alert at once, through the receiver to each partner's
own webhook endpoint, on two ticket-service instances.

    python -m benchmarks.alert_storm
    ALERT_STORM_PARTNERS=2000 python -m benchmarks.alert_storm   # a quicker look

Everything on loopback, each the real program: one PostgreSQL shared by two
gunicorn instances of the ticket service (``ticketing/runtime/gunicorn.conf.py``,
2 workers each, so four delivery threads each with its pool). PARTNERS partners
each have one endpoint (its own secret) on a sink in this process: a raw
asyncio HTTP/1.1 server with keep-alive that answers at once and only records
what arrives (time, path, headers, body; signatures are checked after the run,
so the sink spends as little of the two cores as it can). 1 % of the endpoints
hang (the connection is accepted, the request read, no answer ever comes) and
1 % answer 500; they are spread evenly among the others.

Each partner's alert reaches the receiver as Alertmanager's partner route sends
it: one notification per partner (``group_by: [partner]``), of one alert with the
labels and annotations of ``PartnerTransactionFailureRatioHigh``, posted once,
to the two instances in turn, 8 connections per instance at a time. (A deployment
has Alertmanager notify the receiver of each instance, docs/webhooks.md, and
the second copy is a duplicate: the run through Prometheus does that; here it
would double the receiver's work without changing what is delivered.)

Runs, each on a fresh database and fresh instances:

1. ``storm``: the shipped dispatcher (``webhooks.delivery``: concurrency 16,
   per_endpoint 2 per process), with the hanging and failing endpoints;
2. ``storm, all healthy``: the same without them (every endpoint answers at
   once), for the hanging 1 %'s cost to the others: the p99 of the same 98 %
   from the receiver's answer that queued each event to its delivery (the
   delivery path alone; from the first notification it also carries the
   receiver's pace, which moves with the machine's load);
3. ``sequential``: the baseline, delivery one post at a time per process as
   before the dispatcher (``webhooks.delivery`` concurrency 1, per_endpoint 1:
   each of the four delivery threads posts, waits for the answer, then takes
   the next), with the hanging and failing endpoints;
4. ``via Prometheus``: SMALL_PARTNERS partners through a real Prometheus
   (the shipped partner rules, ``for`` capped to 1s, scraping a page in this
   process that stands in for the exporter's ``platform_partner_transactions_total``
   (the storm is the point here, not the exporter: benchmarks/partner_scale.py
   measures that); every partner's failure ratio jumps to 50 %) and a real
   Alertmanager (the shipped config, group_wait 1s, notifying the receiver of
   both instances), with the shipped dispatcher.

Each run prints the receiver's answer time (first post to last answer; each
post's p50/p99), the time from the first notification to the first, median,
p99 and last successful delivery to a healthy partner, the last one's delay
after the receiver's last answer, deliveries per second and the CPU seconds of
the ticket-service processes. Then every request that reached a sink is
checked: its signature verifies with the secret of the endpoint (partner) the
request reached, the event inside names that partner; a healthy partner got
its event once, a failing one each attempt once (``Partnerwatch-Delivery-Attempt``
counts the documented retries).

Targets: every healthy partner told within 60 s of the receiver's answer; the
hanging 1 % delay the others' p99 by under 1 s (storm vs storm, all healthy);
0 lost, 0 delivered to the wrong partner, 0 duplicates outside documented retries.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import pickle
import shutil
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ._support import (
    ROOT,
    ProcessGroup,
    RawConnection,
    build_request,
    cpu_seconds,
    percentile,
    say,
    table,
    tree_cpu_seconds,
    verdict,
    workdir,
)

PARTNERS = int(os.environ.get("ALERT_STORM_PARTNERS", "10000"))
SMALL_PARTNERS = int(os.environ.get("ALERT_STORM_SMALL_PARTNERS", "500"))
INSTANCES, WORKERS = 2, 2
CONNECTIONS = 8  # receiver posts in flight per instance
HANGING_EVERY, FAILING_EVERY, FAILING_OFFSET = 100, 100, 50  # 1 % each, spread evenly
TOLD_WITHIN = 60.0
HANG_P99_BUDGET = 1.0
RUN_TIMEOUT = float(os.environ.get("ALERT_STORM_TIMEOUT", "900"))
RECEIVER_TOKEN = "alert-storm-receiver-token"
ALERT = "PartnerTransactionFailureRatioHigh"
HEALTHY, FAILING, HANGING = "healthy", "failing", "hanging"
SEQUENTIAL = {"concurrency": 1, "per_endpoint": 1}


# ---------------------------------------------------------------------- sink


@dataclass
class Arrival:
    at: float  # time.time() when the request was read
    partner: int  # from the path: the endpoint the request reached
    head: bytes
    body: bytes


class StormSink:
    """A raw asyncio HTTP/1.1 server in a thread of its own: ``/p/<partner>`` answers 200,
    500 or never (by the partner's behaviour) and records each request; ``/metrics``
    serves ``metrics_page()`` (the run through Prometheus)."""

    def __init__(self) -> None:
        self.behaviour: dict[int, str] = {}
        self.arrivals: list[Arrival] = []
        self.metrics_page = lambda: ""
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="storm-sink", daemon=True)
        self._hung: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StormSink:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def reset(self, behaviour: dict[int, str]) -> None:
        self.behaviour = behaviour
        self.arrivals = []

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024, limit=1 << 20)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length) if length else b""
                path = head.split(b" ", 2)[1]
                if path == b"/metrics":
                    page = self.metrics_page().encode()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(page), page)
                    )
                    continue
                partner = int(path.rsplit(b"/", 1)[1])
                self.arrivals.append(Arrival(time.time(), partner, head, body))
                kind = self.behaviour.get(partner, HEALTHY)
                if kind == HANGING:  # never answer; the client gives up and closes
                    await reader.read()
                    return
                status = b"200 OK" if kind == HEALTHY else b"500 Internal Server Error"
                writer.write(b"HTTP/1.1 %s\r\nContent-Length: 2\r\n\r\nok" % status)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, IndexError):
            pass
        finally:
            writer.close()


# ---------------------------------------------------------------- database


@dataclass
class Partner:
    id: int
    secret: str
    kind: str


def partners_with_endpoints(db_url: str, count: int, sink_url: str, faults: bool) -> list[Partner]:
    """Migrate ``db_url`` and add ``count`` partners, each with one endpoint at the sink,
    by bulk inserts."""
    from sqlalchemy import insert, select

    from tests.harness.app import create_test_app, dispose, ticketing_config
    from ticketing.db import db
    from ticketing.models import Partner as PartnerRow
    from ticketing.models import utcnow
    from ticketing.webhooks.models import WebhookEndpoint

    app = create_test_app(
        ticketing_config(
            db_url, ticketing={"outbox": {"worker": False}, "live": {"enabled": False}}
        )
    )
    with app.app_context():
        now = utcnow()
        db.session.execute(
            insert(PartnerRow),
            [
                {"name": f"Storm Energy {n}", "status": "active", "created_at": now}
                for n in range(count)
            ],
        )
        ids = list(db.session.execute(select(PartnerRow.id).order_by(PartnerRow.id)).scalars())
        partners = []
        for n, pid in enumerate(ids):
            kind = HEALTHY
            if faults and n % HANGING_EVERY == 0:
                kind = HANGING
            elif faults and n % FAILING_EVERY == FAILING_OFFSET:
                kind = FAILING
            partners.append(Partner(pid, f"whsec_storm_{pid}_{os.urandom(8).hex()}", kind))
        db.session.execute(
            insert(WebhookEndpoint),
            [
                {
                    "partner_id": p.id,
                    "url": f"{sink_url}/p/{p.id}",
                    "events": ["alert.firing", "alert.resolved"],
                    "secret": p.secret,
                    "enabled": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for p in partners
            ],
        )
        db.session.commit()
    dispose(app)
    return partners


def outbox_state(db_url: str) -> dict[str, int]:
    import psycopg

    url = db_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        delivered, waiting = conn.execute(
            "SELECT count(*) FILTER (WHERE delivered_at IS NOT NULL AND last_error IS NULL),"
            " count(*) FILTER (WHERE delivered_at IS NULL)"
            " FROM outbox_messages WHERE kind = 'partner_webhook'"
        ).fetchone()
        (receipts_at,) = conn.execute(
            "SELECT extract(epoch FROM max(last_at)) FROM webhook_alert_receipts"
        ).fetchone()
    return {"delivered": delivered, "waiting": waiting, "receipts_at": float(receipts_at or 0)}


# ----------------------------------------------------------------- instances


def start_instances(tmp: Path, name: str, db_url: str, delivery: dict | None):
    from tests.harness.ticketing import start_ticketing

    config = tmp / f"{name}.yml"
    token = tmp / "receiver_token"
    token.write_text(RECEIVER_TOKEN)
    webhooks: dict = {
        "require_https": False,
        "allowed_networks": ["127.0.0.1/32"],
        "receiver_token_file": str(token),
    }
    if delivery:
        webhooks["delivery"] = delivery
    config.write_text(json.dumps({"live": {"enabled": False}, "webhooks": webhooks}))
    env = {"TICKETING_DATABASE_URL": db_url, "TICKETING_CONFIG": str(config)}
    return [
        start_ticketing(tmp / name, env=env, workers=WORKERS, name=f"ticketing-{n}")
        for n in range(INSTANCES)
    ]


def cpu_now(instances, pg) -> tuple[float, float, float]:
    """CPU seconds so far of the ticket-service instances, PostgreSQL and this process
    (the sink, the receiver's clients)."""
    return (
        sum(tree_cpu_seconds(i.process.pid) for i in instances),
        tree_cpu_seconds(pg.process.pid),
        cpu_seconds(os.getpid()),
    )


def stop_instances(instances) -> None:
    for instance in instances:
        instance.stop()


# -------------------------------------------------------------- notifications


def notification(partner: int) -> dict:
    """What Alertmanager's partner route posts for one partner's group."""
    labels = {
        "alertname": ALERT,
        "partner": str(partner),
        "scope": "partner",
        "severity": "warning",
        "team": "support",
    }
    return {
        "version": "4",
        "groupKey": f'{{}}/{{partner=~".+",scope="partner"}}:{{partner="{partner}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "partner-webhooks",
        "groupLabels": {"partner": str(partner)},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {
                    "summary": "31% of your transactions fail",
                    "description": f"Over 10% of the transactions of partner {partner}"
                    " have failed for 2 minutes.",
                    "runbook_url": "https://github.com/partnerwatch/partnerwatch/blob/main/"
                    f"docs/runbooks/{ALERT}.md",
                },
                "startsAt": "2026-05-01T09:00:00.000Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=partner%3Atransactions",
                "fingerprint": hashlib.sha256(str(partner).encode()).hexdigest()[:16],
            }
        ],
    }


@dataclass
class Posted:
    started: float = 0.0
    answered: float = 0.0  # the last answer
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    queued: int = 0
    duplicates: int = 0
    ignored: int = 0
    size: int = 0
    #: partner -> when the post that queued its event was answered (time.time())
    queued_at: dict[int, float] = field(default_factory=dict)


def post_storm(instances, partners: list[Partner]) -> Posted:
    """Every partner's notification, to the instances in turn (partner n to instance
    n mod INSTANCES), CONNECTIONS at a time per instance."""
    from ticketing.webhooks.receiver import PATH

    bodies = [json.dumps(notification(p.id)).encode() for p in partners]
    result = Posted(size=len(bodies[0]))
    lock = threading.Lock()
    queued_at = result.queued_at
    headers = {"Authorization": f"Bearer {RECEIVER_TOKEN}", "Content-Type": "application/json"}

    def worker(n: int, share: int) -> None:
        instance = instances[n]
        conn = RawConnection("127.0.0.1", instance.port, timeout=60)
        host = f"127.0.0.1:{instance.port}"
        latencies, statuses, counts = [], Counter(), Counter()
        last = 0.0
        try:
            mine = list(zip(partners, bodies, strict=True))[n :: len(instances)]
            for partner, body in mine[share::CONNECTIONS]:
                t0 = time.time()
                try:
                    status, answer = conn.request(build_request("POST", PATH, host, body, headers))
                except OSError:
                    status, answer = -1, b"{}"
                last = time.time()
                latencies.append(last - t0)
                statuses[status] += 1
                if status == 200:
                    answered = json.loads(answer)
                    counts.update(answered)
                    if answered.get("queued"):
                        queued_at[partner.id] = last
        finally:
            conn.close()
        with lock:
            result.latencies.extend(latencies)
            result.statuses.update(statuses)
            result.queued += counts["queued"]
            result.duplicates += counts["duplicates"]
            result.ignored += counts["ignored"]
            result.answered = max(result.answered, last)

    threads = [
        threading.Thread(target=worker, args=(n, share), daemon=True)
        for n in range(len(instances))
        for share in range(CONNECTIONS)
    ]
    result.started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


# -------------------------------------------------------------------- checks


@dataclass
class Outcome:
    name: str
    partners: list[Partner]
    posted: Posted
    arrivals: list[Arrival]
    told: dict[int, float]  # healthy partner -> first successful delivery (time.time())
    cpu: tuple[float, float, float]  # ticket service, PostgreSQL, this process (s)
    outbox: dict[str, int]
    wrong: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    attempts: Counter = field(default_factory=Counter)  # kind -> requests received
    load: float = field(default_factory=lambda: os.getloadavg()[0])  # at the run's end

    @property
    def healthy(self) -> list[int]:
        return [p.id for p in self.partners if p.kind == HEALTHY]

    @property
    def lost(self) -> list[int]:
        return [pid for pid in self.healthy if pid not in self.told]

    def delays(self, ids: list[int] | None = None) -> list[float]:
        """Seconds from the first notification to each successful delivery (of ``ids``)."""
        ids = self.healthy if ids is None else ids
        return sorted(self.told[pid] - self.posted.started for pid in ids if pid in self.told)

    def waits(self, ids: list[int] | None = None) -> list[float]:
        """Seconds from the receiver's answer that queued each event to its successful
        delivery (of ``ids``): the delivery path alone, whatever the receiver's pace."""
        ids = self.healthy if ids is None else ids
        queued = self.posted.queued_at
        return sorted(
            self.told[pid] - queued[pid] for pid in ids if pid in self.told and pid in queued
        )

    @property
    def rate(self) -> float:
        times = sorted(self.told.values())
        return len(times) / (times[-1] - times[0]) if len(times) > 1 else float("nan")


def headers_of(head: bytes) -> dict[str, str]:
    found = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        found[name.strip().lower()] = value.strip()
    return found


def signature_ok(secret: str, header: str, body: bytes) -> bool:
    """docs/webhooks.md's check, as a partner writes it."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(
        secret.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


def check(outcome: Outcome) -> None:
    by_id = {p.id: p for p in outcome.partners}
    seen: Counter = Counter()
    for arrival in outcome.arrivals:
        partner = by_id.get(arrival.partner)
        if partner is None:
            outcome.wrong.append(f"a request to /p/{arrival.partner}, no such partner")
            continue
        outcome.attempts[partner.kind] += 1
        headers = headers_of(arrival.head)
        try:
            event = json.loads(arrival.body)
            good = (
                signature_ok(partner.secret, headers["partnerwatch-signature"], arrival.body)
                and event["partner_id"] == partner.id
                and event["data"]["description"].endswith(
                    f"partner {partner.id} have failed for 2 minutes."
                )
                and headers["partnerwatch-event-id"] == event["id"]
            )
        except (KeyError, ValueError, TypeError, AttributeError):
            good = False
        if not good:
            outcome.wrong.append(f"partner {partner.id}: {arrival.body[:200]!r}")
            continue
        # A healthy endpoint answers every request: a second one of the same event is a
        # duplicate. A failing one is sent each attempt once (the documented retries).
        key = (partner.id, event["id"]) + (
            () if partner.kind == HEALTHY else (headers.get("partnerwatch-delivery-attempt"),)
        )
        seen[key] += 1
        if seen[key] == 2:
            outcome.duplicates.append(f"partner {partner.id} ({partner.kind}): {key}")


# ---------------------------------------------------------------------- runs


def storm_run(
    name: str,
    tmp: Path,
    pg,
    sink: StormSink,
    count: int,
    faults: bool,
    delivery: dict | None = None,
) -> Outcome:
    started = time.monotonic()
    db_url = pg.create_database(name.replace(" ", "_").replace(",", ""))
    partners = partners_with_endpoints(db_url, count, sink.url, faults)
    sink.reset({p.id: p.kind for p in partners})
    instances = start_instances(tmp, name.replace(" ", "-").replace(",", ""), db_url, delivery)
    try:
        say(f"[{name}] {count} partners, instances up in {time.monotonic() - started:.0f} s")
        cpu0 = cpu_now(instances, pg)
        posted = post_storm(instances, partners)
        say(
            f"[{name}] receiver answered {len(posted.latencies)} posts in "
            f"{posted.answered - posted.started:.1f} s"
        )
        told = wait_told(sink, partners, RUN_TIMEOUT)
        cpu = tuple(b - a for a, b in zip(cpu0, cpu_now(instances, pg), strict=True))
        time.sleep(2.0)  # late arrivals (duplicates) and the last outcomes recorded
    finally:
        stop_instances(instances)
    outcome = Outcome(name, partners, posted, list(sink.arrivals), told, cpu, outbox_state(db_url))
    check(outcome)
    say(f"[{name}] done in {time.monotonic() - started:.0f} s")
    return outcome


def wait_told(sink: StormSink, partners: list[Partner], timeout: float) -> dict[int, float]:
    """Wait until every healthy partner got its event (or ``timeout``); when each first did."""
    healthy = {p.id for p in partners if p.kind == HEALTHY}
    told: dict[int, float] = {}
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        new = sink.arrivals[seen:]  # the sink appends meanwhile: read each once
        seen += len(new)
        for arrival in new:
            if arrival.partner in healthy and arrival.partner not in told:
                told[arrival.partner] = arrival.at
        if len(told) == len(healthy):
            break
        time.sleep(0.2)
    return told


def prometheus_run(tmp: Path, pg, sink: StormSink, count: int) -> Outcome:
    """The same through a real Prometheus and Alertmanager (shipped rules and config)."""
    from alertmanager.render import render as render_alertmanager
    from prometheus.render import render_rules
    from tests.harness import HTTPSink, SMTPSink, start_alertmanager, start_prometheus

    name = "via Prometheus"
    started = time.monotonic()
    db_url = pg.create_database("via_prometheus")
    partners = partners_with_endpoints(db_url, count, sink.url, faults=True)
    sink.reset({p.id: p.kind for p in partners})
    flipped: list[float] = []

    def page() -> str:
        now = time.time()
        lines = ["# TYPE platform_partner_transactions_total counter"]
        for p in partners:
            completed = int(now * 10) % 10_000_000
            failed = int((now - flipped[0]) * 10) if flipped else 0
            lines.append(
                f'platform_partner_transactions_total{{partner="{p.id}",status="completed"}}'
                f" {completed}"
            )
            lines.append(
                f'platform_partner_transactions_total{{partner="{p.id}",status="failed"}} {failed}'
            )
        return "\n".join(lines) + "\n"

    sink.metrics_page = page
    instances = start_instances(tmp, "via-prometheus", db_url, None)
    smtp, team = SMTPSink().start(), HTTPSink().start()
    procs = ProcessGroup()
    try:
        secrets = tmp / "am-secrets"
        shutil.copytree(ROOT / "alertmanager" / "secrets.example", secrets)
        (secrets / "slack_api_url").write_text(f"{team.url}/slack")
        (secrets / "partner_webhooks_token").write_text(RECEIVER_TOKEN)
        receivers = [f"{i.url}/internal/alertmanager/partner-alerts" for i in instances]
        am = start_alertmanager(
            tmp / "am",
            render_alertmanager(
                secrets_dir=secrets,
                smtp_smarthost=smtp.address,
                webhook_urls={
                    "oncall-critical": f"{team.url}/oncall",
                    "heartbeat": f"{team.url}/heartbeat",
                    "partner-webhooks": receivers[0],
                },
                extra_webhook_urls={"partner-webhooks": receivers[1:]},
                timings={"group_wait": "1s", "group_interval": "1m", "repeat_interval": "1h"},
            ),
        )
        procs.add(am.process)
        rules = render_rules(tmp / "rules", max_for="1s")
        prom = start_prometheus(
            tmp / "prometheus",
            [
                {
                    "job_name": "exporter",
                    "static_configs": [{"targets": [f"127.0.0.1:{sink.port}"]}],
                }
            ],
            rule_files=[rules / "partners.rules.yml"],
            alertmanagers=[am.address],
        )
        procs.add(prom.process)
        prom.wait_for(
            "partner:transactions_failed:ratio_rate5m",
            lambda r: len(r) == count,
            timeout=120,
        )
        say(f"[{name}] {count} partners scraped, rules evaluated; failures start now")
        cpu0 = cpu_now(instances, pg)
        flipped.append(time.time())
        told = wait_told(sink, partners, RUN_TIMEOUT)
        cpu = tuple(b - a for a, b in zip(cpu0, cpu_now(instances, pg), strict=True))
        time.sleep(2.0)
        firing = [a for a in prom.alerts() if a["labels"]["alertname"] == ALERT]
        say(f"[{name}] {len(firing)} {ALERT} alerts in Prometheus")
    finally:
        procs.stop_all()
        stop_instances(instances)
        smtp.stop()
        team.stop()
        sink.metrics_page = lambda: ""
    state = outbox_state(db_url)
    posted = Posted(started=flipped[0], answered=state["receipts_at"])
    outcome = Outcome(name, partners, posted, list(sink.arrivals), told, cpu, state)
    check(outcome)
    say(f"[{name}] done in {time.monotonic() - started:.0f} s")
    return outcome


# -------------------------------------------------------------------- report


def seconds(value: float) -> str:
    return f"{value:.2f}"


def report(runs: list[Outcome], storm: Outcome, calm: Outcome, sequential: Outcome) -> None:
    say()
    say(
        f"{PARTNERS} partners, one endpoint each on a loopback sink (faults: 1 % hanging, "
        f"1 % answering 500); {INSTANCES} ticket-service instances x {WORKERS} gunicorn "
        f"workers on one PostgreSQL; one notification per partner ({storm.posted.size} bytes, "
        f"one alert) to the instances in turn, {CONNECTIONS} connections per instance. "
        "Baseline (sequential): webhooks.delivery concurrency 1, per_endpoint 1 "
        "(each process posts one event at a time and waits for its answer)."
    )
    say()
    say("Receiver (first notification to last answer; per post)")
    rows = []
    for run in runs:
        p = run.posted
        if p.latencies:
            rows.append(
                [
                    run.name,
                    len(p.latencies),
                    seconds(p.answered - p.started),
                    f"{percentile(p.latencies, 50) * 1000:.0f}",
                    f"{percentile(p.latencies, 99) * 1000:.0f}",
                    f"{p.queued}/{p.duplicates}/{p.ignored}",
                    " ".join(f"{k}:{v}" for k, v in sorted(p.statuses.items())),
                ]
            )
        else:
            rows.append(
                [run.name, "-", seconds(p.answered - p.started) + " (*)", "-", "-", "-", "-"]
            )
    say(
        table(
            ["run", "posts", "all answered s", "p50 ms", "p99 ms", "queued/dup/ign", "status"], rows
        )
    )
    say(
        "(*) through Alertmanager: from the failures starting to the receiver's last "
        "receipt (rule evaluation, group_wait 1s, Alertmanager's posts)"
    )
    say()
    say("Successful deliveries to healthy partners, seconds from the first notification")
    rows = []
    for run in runs:
        d = run.delays()
        after = (max(run.told.values()) - run.posted.answered) if run.told else float("nan")
        rows.append(
            [
                run.name,
                f"{len(run.told)}/{len(run.healthy)}",
                seconds(d[0]) if d else "-",
                seconds(percentile(d, 50)),
                seconds(percentile(d, 99)),
                seconds(d[-1]) if d else "-",
                f"{after:+.2f}",
                f"{run.rate:.0f}",
                "/".join(f"{c:.0f}" for c in run.cpu),
                f"{run.load:.1f}",
            ]
        )
    say(
        table(
            [
                "run",
                "told",
                "first",
                "median",
                "p99",
                "last",
                "last - answer",
                "per s",
                "CPU s (*)",
                "load",
            ],
            rows,
        )
    )
    say(
        "(*) ticket service / PostgreSQL / this process (sink, receiver clients); load: the "
        "machine's 1-minute load average at the run's end (2 cores; other work included)"
    )
    say()
    say(
        "The delivery path alone: seconds from the receiver's answer that queued a "
        "partner's event to its delivery"
    )
    rows = []
    for run in runs:
        w = run.waits()
        rows.append(
            [run.name]
            + (
                [seconds(percentile(w, 50)), seconds(percentile(w, 99)), seconds(w[-1])]
                if w
                else ["-", "-", "-"]
            )
        )
    say(table(["run", "median", "p99", "max"], rows))
    say()
    say("Checks (every request that reached a sink)")
    rows = []
    for run in runs:
        rows.append(
            [
                run.name,
                len(run.arrivals),
                run.attempts[FAILING],
                run.attempts[HANGING],
                len(run.lost),
                len(run.wrong),
                len(run.duplicates),
                f"{run.outbox['delivered']}/{run.outbox['waiting']}",
            ]
        )
    say(
        table(
            [
                "run",
                "requests",
                "to failing",
                "to hanging",
                "lost",
                "wrong partner",
                "duplicates",
                "outbox done/waiting",
            ],
            rows,
        )
    )
    for run in runs:
        for line in (run.wrong + run.duplicates)[:5]:
            say(f"  {run.name}: {line}")
    say()
    same = storm.healthy  # healthy in both runs
    p99_storm = percentile(storm.waits(same), 99)
    p99_calm = percentile(calm.waits(same), 99)
    first_storm = percentile(storm.delays(same), 99)
    first_calm = percentile(calm.delays(same), 99)
    p99_seq = percentile(sequential.delays(same), 99)
    wait_seq = percentile(sequential.waits(same), 99)
    last = {run.name: (max(run.told.values()) if run.told else float("inf")) for run in runs}
    say(
        f"storm vs sequential (the same {len(same)} partners): deliveries per second "
        f"x{storm.rate / sequential.rate:.1f} ({storm.rate:.0f} vs {sequential.rate:.0f}); "
        f"p99 from the first notification {first_storm:.1f} s vs {p99_seq:.1f} s "
        f"(x{p99_seq / first_storm:.1f} sooner); p99 from queued to told {p99_storm:.2f} s vs "
        f"{wait_seq:.2f} s (x{wait_seq / p99_storm:.1f} sooner)"
    )
    worst = max(
        (last[run.name] - run.posted.answered) if not run.lost else float("inf")
        for run in (storm, calm, runs[-1])
    )
    say(
        verdict(
            f"every healthy partner told within {TOLD_WITHIN:.0f} s of the receiver's answer",
            worst <= TOLD_WITHIN,
            ", ".join(
                f"{run.name}: last {last[run.name] - run.posted.answered:+.1f} s"
                + (f", {len(run.lost)} never" if run.lost else "")
                for run in runs
            ),
        )
    )
    say(
        verdict(
            f"the hanging 1 % delay the others' p99 by under {HANG_P99_BUDGET:g} s",
            p99_storm - p99_calm < HANG_P99_BUDGET,
            f"p99 from queued to told of the same {len(same)} partners {p99_storm:.2f} s "
            f"with them, {p99_calm:.2f} s without ({p99_storm - p99_calm:+.2f} s); from the "
            f"first notification {first_storm:.2f} s vs {first_calm:.2f} s, which includes "
            "the receiver's pace",
        )
    )
    lost = sum(len(run.lost) for run in runs)
    wrong = sum(len(run.wrong) for run in runs)
    dups = sum(len(run.duplicates) for run in runs)
    say(
        verdict(
            "0 lost, 0 to the wrong partner, 0 duplicates outside documented retries",
            lost == wrong == dups == 0,
            f"{lost} lost, {wrong} wrong, {dups} duplicates over "
            f"{sum(len(run.arrivals) for run in runs)} requests in {len(runs)} runs",
        )
    )


def main() -> int:
    from tests.harness import start_postgres

    logging.disable(logging.WARNING)
    sink = StormSink().start()
    pg = start_postgres()
    try:
        with workdir("alert-storm") as tmp:
            storm = storm_run("storm", tmp, pg, sink, PARTNERS, faults=True)
            calm = storm_run("storm, all healthy", tmp, pg, sink, PARTNERS, faults=False)
            sequential = storm_run(
                "sequential", tmp, pg, sink, PARTNERS, faults=True, delivery=SEQUENTIAL
            )
            small = prometheus_run(tmp, pg, sink, SMALL_PARTNERS)
            if os.environ.get("ALERT_STORM_SAVE"):  # the raw outcomes, to look into afterwards
                with open(os.environ["ALERT_STORM_SAVE"], "wb") as saved:
                    pickle.dump([storm, calm, sequential, small], saved)
            report([storm, calm, sequential, small], storm, calm, sequential)
    finally:
        pg.cleanup()
        sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
