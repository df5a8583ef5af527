"""200 partners on two ticket-service instances while Redis, PostgreSQL, a worker and an
Alertmanager fail.

    python -m benchmarks.ha_load_faults

Everything on loopback, each the real program: one PostgreSQL and one Redis
shared by two gunicorn instances of the ticket service (``ticketing/runtime/gunicorn.conf.py``,
2 workers x 16 threads each, the shipped security scanning and rate limits,
an outbox deliverer in every process posting to both Alertmanagers of a
cluster). The cluster groups by ticket (one group, so one notification per
ticket and channel, each can be counted) and its one receiver has the four
channels of an on-call notification:

- email, to an SMTP sink in this process;
- Slack, to an HTTP sink in this process;
- the on-call webhook, to the same HTTP sink, which stands in for our on-call
  receiver: it applies the rule of every receiver we own (a repeat of a
  notice, by group key, alert fingerprint, status and start, within
  ``webhooks.duplicate_window``, is dropped);
- the ticket service's own receiver (``POST /internal/alertmanager/partner-alerts``,
  ``ticketing/webhooks/receiver.py``, the one partner-scoped alerts reach),
  through a counting proxy in this process that passes each post to the two
  instances in turn and keeps the receiver's answer (queued or dropped as a
  duplicate).

Alertmanager's cluster delivers at least once (a member killed in the instant
it sends may be repeated by its peer after ``peer_timeout``): that is
documented and accepted for email and Slack, whose repeats are reported as
figures; the channels we own must drop them, and a repeat a receiver of ours
dropped is not a delivery.

200 client threads, one partner (and API key) each, half on each instance,
each on its own kept-alive connection, do for LOAD seconds, with 0.5-2.5 s
of think time between requests (about 130 requests a second in all, under
each partner's 100 calls and 20 tickets a minute): create a ticket (30 %,
with an ``Idempotency-Key``, retried with the same key after a 503 or a lost
connection until acknowledged), post a message on one of its tickets (30 %),
list its tickets (40 %). Meanwhile the run, at fixed times:

1. SIGKILLs Redis and starts it again 8 s later (rate limits fall back to
   each worker's memory, then return to Redis);
2. restarts PostgreSQL (fast shutdown, start again 3 s later);
3. SIGKILLs one gunicorn worker of the first instance (its master starts another);
4. SIGKILLs one Alertmanager and starts it again 6 s later.

It prints requests by status, p50/p99 per operation outside the fault
windows (a fault's start to 5 s after its end) and inside, tickets
acknowledged vs found in the database afterwards, outbox messages vs
notifications received per channel (received, repeats, repeats our receivers
dropped, delivered more than once, never), and the recovery after each fault.
Targets: 0 tickets lost or duplicated, each outbox message notified exactly
once on the channels we own (on-call webhook, ticket-service receiver), no
5xx other than 503 while PostgreSQL is down, p99 under 250 ms outside the
fault windows.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from tests.harness import (
    HTTPSink,
    SMTPSink,
    free_port,
    start_alertmanager_cluster,
    start_postgres,
    start_redis,
    wait_until,
)
from tests.harness.ticketing import TicketingInstance, prepare_database, start_ticketing
from ticketing.webhooks.receiver import PATH as RECEIVER_PATH
from ticketing.webhooks.receiver import _receipt_key as notice_key
from ticketing.webhooks.settings import WebhooksSettings

from ._support import ms, percentile, say, table, verdict, workdir

CLIENTS = 200
INSTANCES, WORKERS, THREADS = 2, 2, 16
LOAD = 60.0  # seconds of load
THINK = (0.5, 2.5)  # seconds between a client's requests
GRACE = 5.0  # after a fault ends, still inside its window
TARGET_P99 = 0.250
PEER_TIMEOUT = "15s"
PEER_TIMEOUT_SECONDS = 15
#: (name, start, end) relative to the start of the load; the end is filled in when known.
FAULTS = [
    ("Redis killed", 8.0, 16.0),
    ("PostgreSQL restarted", 24.0, None),
    ("gunicorn worker SIGKILLed", 38.0, None),
    ("Alertmanager killed", 46.0, 52.0),
]
MIX = [("create", 0.3), ("message", 0.3), ("list", 0.4)]
RECEIVER_TOKEN = "ha-load-faults-receiver-token"
#: Our receivers drop a repeat of a notice within this (webhooks.duplicate_window, shipped).
DUPLICATE_WINDOW = WebhooksSettings().duplicate_window
EMAIL, SLACK, ONCALL, RECEIVER = (
    "email",
    "Slack",
    "on-call webhook",
    "ticket-service receiver",
)
CHANNELS = (EMAIL, SLACK, ONCALL, RECEIVER)
OURS = (ONCALL, RECEIVER)  # receivers we own: they de-duplicate


@dataclass
class Record:
    at: float  # when the answer arrived (monotonic)
    op: str
    status: int  # -1: no answer (connection lost, timeout)
    latency: float


@dataclass
class Fault:
    name: str
    start: float
    end: float | None = None
    recovered: float | None = None  # when the service was whole again (monotonic)
    detail: str = ""


@dataclass
class Client:
    index: int
    instance: TicketingInstance
    key: str
    records: list[Record] = field(default_factory=list)
    acked: set[int] = field(default_factory=set)
    unacked_creates: int = 0


# ------------------------------------------------------------------- clients


class Connection:
    """One kept-alive connection (requests' Session with a single pooled connection)."""

    def __init__(self, base: str, key: str):
        self.base = base
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.headers["X-API-Key"] = key

    def call(self, method: str, path: str, **kwargs) -> tuple[int, dict | None, float]:
        t0 = time.monotonic()
        try:
            response = self.session.request(method, self.base + path, timeout=10, **kwargs)
        except requests.RequestException:
            return -1, None, time.monotonic() - t0
        took = time.monotonic() - t0
        try:
            body = response.json()
        except ValueError:
            body = None
        return response.status_code, body, took


def run_client(client: Client, stop_at: float, seed: int) -> None:
    rng = random.Random(seed)
    conn = Connection(client.instance.url, client.key)
    n = 0
    while time.monotonic() < stop_at:
        time.sleep(rng.uniform(*THINK))
        if time.monotonic() >= stop_at:
            break
        roll, op = rng.random(), "list"
        for name, share in MIX:
            if roll < share:
                op = name
                break
            roll -= share
        if op == "message" and not client.acked:
            op = "create"
        n += 1
        if op == "create":
            create(client, conn, n, stop_at + 20)
        elif op == "message":
            ticket = rng.choice(sorted(client.acked))
            status, _, took = conn.call(
                "POST",
                f"/api/v1/tickets/{ticket}/messages",
                json={"body": f"Any news? (message {n})"},
            )
            client.records.append(Record(time.monotonic(), op, status, took))
        else:
            status, _, took = conn.call("GET", "/api/v1/tickets")
            client.records.append(Record(time.monotonic(), op, status, took))


def create(client: Client, conn: Connection, n: int, give_up_at: float) -> None:
    """File a ticket; retry with the same Idempotency-Key until it is acknowledged."""
    body = {
        "title": f"Invoice question {client.index}-{n}",
        "description": "The October invoice shows the wrong number of energy units.",
    }
    headers = {"Idempotency-Key": f"bench-{client.index}-{n}"}
    while True:
        status, answer, took = conn.call("POST", "/api/v1/tickets", json=body, headers=headers)
        client.records.append(Record(time.monotonic(), "create", status, took))
        if status in (200, 201) and answer and "id" in answer:
            client.acked.add(int(answer["id"]))
            return
        if status not in (-1, 503) or time.monotonic() > give_up_at:
            client.unacked_creates += 1
            return
        time.sleep(0.3)


# ---------------------------------------------------------- notification channels


@dataclass
class Notice:
    """One notification of one ticket on one channel."""

    at: float  # wall-clock time it arrived
    ticket: str
    dropped: bool = False  # a receiver of ours took it as a repeat and dropped it
    failed: bool = False  # not taken (the receiver answered an error, or no answer)


def quiet(server: ThreadingHTTPServer) -> None:
    """No traceback for a connection its peer reset (an Alertmanager killed, or giving
    up on a slow answer): expected here, and counted by what did arrive."""
    report_error = server.handle_error

    def handle_error(request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            report_error(request, client_address)

    server.handle_error = handle_error


class ReceiverProxy:
    """Alertmanager's webhook to the ticket service's receiver, through this process:
    each post goes to the instances in turn (as a load balancer would) and its
    answer goes back to Alertmanager; the post's ticket and the receiver's answer
    (``{"queued", "duplicates", "ignored"}``) are kept."""

    def __init__(self) -> None:
        self.port = free_port()
        self.targets: list[str] = []
        self.notices: list[Notice] = []
        self._lock = threading.Lock()
        self._turn = itertools.count()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        quiet(self._server)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{RECEIVER_PATH}"

    def start(self) -> ReceiverProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _forward(self, body: bytes, authorization: str) -> tuple[int, bytes]:
        if not self.targets:
            return 503, b"no instance yet"
        target = self.targets[next(self._turn) % len(self.targets)]
        try:
            answer = requests.post(
                target + RECEIVER_PATH,
                data=body,
                headers={"Authorization": authorization, "Content-Type": "application/json"},
                timeout=10,
            )
        except requests.RequestException as exc:
            return 502, str(exc).encode()
        return answer.status_code, answer.content

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = proxy._forward(body, self.headers.get("Authorization", ""))
                at = time.time()
                counts = {}
                if status == 200:
                    try:
                        counts = json.loads(answer)
                    except ValueError:
                        counts = {}
                tickets = [
                    a["labels"].get("ticket", "")
                    for a in json.loads(body or b"{}").get("alerts", [])
                ]
                with proxy._lock:
                    for ticket in tickets:  # one alert per notification (grouped by ticket)
                        proxy.notices.append(
                            Notice(
                                at,
                                ticket,
                                dropped=bool(counts.get("duplicates")),
                                failed=status != 200 or not (counts.get("queued")),
                            )
                        )
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the Alertmanager that sent it was killed

            def log_message(self, *args) -> None:
                pass

        return Handler


def alertmanager_config(http_url: str, smtp_address: str, receiver_url: str) -> dict:
    """One group per ticket; one receiver with the on-call channels and ours."""
    subject = "ticket {{ .GroupLabels.ticket }}"
    return {
        "global": {
            "smtp_smarthost": smtp_address,
            "smtp_from": "alertmanager@ha-load-faults.example",
            "smtp_require_tls": False,
            "slack_api_url": f"{http_url}/slack",
        },
        "route": {
            "receiver": "oncall",
            "group_by": ["alertname", "ticket"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "oncall",
                "email_configs": [
                    {
                        "to": "oncall@ha-load-faults.example",
                        "send_resolved": False,
                        "headers": {"Subject": subject},
                    }
                ],
                "slack_configs": [{"channel": "#oncall", "send_resolved": False, "title": subject}],
                "webhook_configs": [
                    {"url": f"{http_url}/oncall", "send_resolved": False},
                    {
                        "url": receiver_url,
                        "send_resolved": False,
                        "http_config": {
                            "authorization": {"type": "Bearer", "credentials": RECEIVER_TOKEN}
                        },
                    },
                ],
            }
        ],
    }


def ticket_of_subject(text: str) -> str | None:
    head, _, ticket = text.partition(" ")
    return ticket.strip() if head == "ticket" else None


def channel_notices(smtp: SMTPSink, sink: HTTPSink, proxy: ReceiverProxy) -> dict[str, list]:
    """What reached each channel, in order of arrival; the on-call webhook's repeats of
    a notice within DUPLICATE_WINDOW marked dropped (the rule of every receiver we own)."""
    with smtp._lock:  # the sink's own list, read under its lock
        mails = list(smtp.messages)
    email = [Notice(m.received_at, t) for m in mails if (t := ticket_of_subject(m.subject))]
    slack = [
        Notice(post.received_at, t)
        for post in sink.received("/slack")
        if (
            t := ticket_of_subject(
                ((post.json or {}).get("attachments") or [{}])[0].get("title", "")
            )
        )
    ]
    oncall, taken = [], {}
    for post in sorted(sink.received("/oncall"), key=lambda p: p.received_at):
        for alert in post.json["alerts"]:
            key = notice_key(post.json["groupKey"], alert)
            first = taken.get(key)
            dropped = first is not None and post.received_at - first < DUPLICATE_WINDOW
            if not dropped:
                taken[key] = post.received_at
            oncall.append(Notice(post.received_at, alert["labels"].get("ticket", ""), dropped))
    with proxy._lock:
        received = list(proxy.notices)
    return {EMAIL: email, SLACK: slack, ONCALL: oncall, RECEIVER: received}


@dataclass
class ChannelCount:
    received: int  # notifications that reached the channel
    notified: set[str]  # tickets delivered at least once (or taken before an answer was lost)
    repeated: dict[str, int]  # ticket -> notifications beyond the first (dropped or not)
    dropped: int  # repeats a receiver of ours dropped
    twice: dict[str, int]  # ticket -> deliveries, for those delivered more than once


def count_channel(notices: list[Notice], expected: set[str]) -> ChannelCount:
    per_ticket: dict[str, list[Notice]] = {}
    for notice in notices:
        if notice.ticket in expected:
            per_ticket.setdefault(notice.ticket, []).append(notice)
    delivered = {
        t: sum(1 for n in ns if not n.dropped and not n.failed) for t, ns in per_ticket.items()
    }
    # A notice the receiver took whose answer was lost comes back as a dropped repeat:
    # the ticket was notified once.
    notified = {t for t, ns in per_ticket.items() if delivered[t] or any(n.dropped for n in ns)}
    return ChannelCount(
        received=sum(len(ns) for ns in per_ticket.values()),
        notified=notified,
        repeated={t: len(ns) - 1 for t, ns in per_ticket.items() if len(ns) > 1},
        dropped=sum(1 for ns in per_ticket.values() for n in ns if n.dropped),
        twice={t: n for t, n in delivered.items() if n > 1},
    )


# -------------------------------------------------------------------- faults


def inject_faults(t0: float, faults: list[Fault], redis, pg, instances, alertmanagers) -> None:
    def at(offset: float) -> None:
        time.sleep(max(0.0, t0 + offset - time.monotonic()))

    redis_fault, pg_fault, worker_fault, am_fault = faults
    client = redis.client()

    at(redis_fault.start)
    redis.kill()
    at(redis_fault.end)
    redis.start()
    redis_fault.end = time.monotonic() - t0
    # Back when the workers count in Redis again (the restarted Redis starts empty).
    try:
        wait_until(lambda: client.dbsize() > 0, timeout=20, interval=0.05, message="")
        redis_fault.recovered = time.monotonic() - t0
        redis_fault.detail = "rate-limit counters back in Redis"
    except TimeoutError:
        redis_fault.detail = "no counter in Redis 20 s after its restart"

    at(pg_fault.start)
    pg.process.signal(signal.SIGINT)  # fast shutdown: every connection is cut
    pg.process.popen.wait(30)
    time.sleep(3)
    pg.start()
    pg_fault.end = time.monotonic() - t0

    at(worker_fault.start)
    victim_instance = instances[0]
    before = victim_instance.worker_pids()
    victim = before[0]
    os.kill(victim, signal.SIGKILL)
    worker_fault.end = time.monotonic() - t0
    try:
        wait_until(
            lambda: len([p for p in victim_instance.worker_pids() if p != victim]) == len(before),
            timeout=30,
            interval=0.05,
            message="",
        )
        worker_fault.recovered = time.monotonic() - t0
        worker_fault.detail = "gunicorn started a new worker"
    except TimeoutError:
        worker_fault.detail = "no new worker within 30 s"

    at(am_fault.start)
    am = alertmanagers[0]
    am.kill()
    at(am_fault.end)
    am.start()
    am_fault.end = time.monotonic() - t0
    try:
        for node in alertmanagers:
            wait_until(
                lambda node=node: (
                    len(node.cluster_status().get("peers") or []) == len(alertmanagers)
                ),
                timeout=30,
                interval=0.1,
                message="",
            )
        am_fault.recovered = time.monotonic() - t0
        am_fault.detail = "the cluster re-formed (both see 2 peers)"
    except TimeoutError:
        am_fault.detail = "the cluster did not re-form within 30 s"


def recovery_from_requests(
    fault: Fault, records: list[Record], t0: float, until: float
) -> float | None:
    """Seconds after the fault's end until the last failed request (no answer, 5xx) before
    ``until`` (the next fault's start, or the end of the load)."""
    start, end = t0 + fault.start, t0 + fault.end
    bad = [
        r.at for r in records if start <= r.at <= t0 + until and (r.status == -1 or r.status >= 500)
    ]
    if not bad:
        return 0.0
    return max(0.0, max(bad) - end)


# ----------------------------------------------------------------------- run


def main() -> int:
    logging.disable(logging.WARNING)
    with workdir("ha-load-faults") as tmp:
        return run(tmp)


def run(tmp: Path) -> int:
    sink = HTTPSink().start()
    if sink._server is not None:
        quiet(sink._server)
    smtp = SMTPSink().start()
    proxy = ReceiverProxy().start()
    pg = start_postgres()
    redis = start_redis(tmp)
    alertmanagers, instances = [], []
    try:
        # Alertmanager's own peer_timeout (15 s): how long the second replica waits
        # for the first to notify before it does.
        alertmanagers = start_alertmanager_cluster(
            tmp,
            alertmanager_config(sink.url, smtp.address, proxy.url),
            size=2,
            peer_timeout=PEER_TIMEOUT,
        )
        db_url = pg.create_database("bench")
        t_setup = time.monotonic()
        keys = prepare_database(db_url, partners=CLIENTS)
        say(f"set-up: {CLIENTS} partners with API keys in {time.monotonic() - t_setup:.1f}s")
        config = tmp / "ticketing.yml"
        token = tmp / "receiver_token"
        token.write_text(RECEIVER_TOKEN)
        config.write_text(
            json.dumps(
                {
                    "outbox": {
                        "alertmanager_url": [am.url for am in alertmanagers],
                        "poll_interval": "500ms",
                        "alert_ttl": "10m",
                    },
                    "live": {"enabled": False},
                    "webhooks": {"receiver_token_file": str(token)},
                }
            )
        )
        env = {
            "TICKETING_DATABASE_URL": db_url,
            "TICKETING_CONFIG": str(config),
            "REDIS_URL": redis.url,
        }
        instances = [
            start_ticketing(tmp, env=env, workers=WORKERS, threads=THREADS)
            for _ in range(INSTANCES)
        ]
        proxy.targets = [instance.url for instance in instances]
        clients = [Client(i, instances[i % INSTANCES], keys.partners[i]) for i in range(CLIENTS)]

        load_before = os.getloadavg()[0]
        t0, wall0 = time.monotonic(), time.time()
        stop_at = t0 + LOAD
        faults = [Fault(name, start, end) for name, start, end in FAULTS]
        threads = [
            threading.Thread(target=run_client, args=(c, stop_at, c.index), daemon=True)
            for c in clients
        ]
        for thread in threads:
            thread.start()
        injector = threading.Thread(
            target=inject_faults,
            daemon=True,
            args=(t0, faults, redis, pg, instances, alertmanagers),
        )
        injector.start()
        for thread in threads:
            thread.join(LOAD + 60)
        injector.join(30)
        took = time.monotonic() - t0
        notices = functools.partial(channel_notices, smtp, sink, proxy)
        report(clients, faults, t0, wall0, took, db_url, notices, load_before)
        return 0
    finally:
        for instance in instances:
            instance.stop()
        for am in alertmanagers:
            am.stop()
        redis.stop()
        pg.cleanup()
        proxy.stop()
        smtp.stop()
        sink.stop()


def report(
    clients: list[Client],
    faults: list[Fault],
    t0: float,
    wall0: float,
    took: float,
    db_url: str,
    notices: Callable[[], dict[str, list[Notice]]],
    load_before: float,
) -> None:
    import psycopg

    records = [r for c in clients for r in c.records]
    pg_fault = next(f for f in faults if f.name.startswith("PostgreSQL"))
    windows = [(t0 + f.start, t0 + (f.end or f.start) + GRACE) for f in faults]

    def in_window(r: Record) -> bool:
        return any(a <= r.at <= b for a, b in windows)

    def pg_down(r: Record) -> bool:
        return t0 + pg_fault.start <= r.at <= t0 + pg_fault.end + GRACE

    say(
        f"\n{CLIENTS} clients, {INSTANCES} instances x {WORKERS} workers x {THREADS} threads, "
        f"{took:.0f} s of load: {len(records)} requests ({len(records) / took:.0f}/s)"
    )
    statuses: dict[str, int] = {}
    for r in records:
        label = "no answer" if r.status == -1 else str(r.status)
        statuses[label] = statuses.get(label, 0) + 1
    say("\nRequests by status")
    say(
        table(
            ["status", "requests", "while PostgreSQL was down"],
            [
                (
                    s,
                    n,
                    sum(
                        1
                        for r in records
                        if (str(r.status) == s or (s == "no answer" and r.status == -1))
                        and pg_down(r)
                    ),
                )
                for s, n in sorted(statuses.items())
            ],
        )
    )
    bad_5xx = [r for r in records if r.status >= 500 and not (r.status == 503 and pg_down(r))]
    lost = [r for r in records if r.status == -1]

    say("\nLatency per operation (answered requests; fault windows: start to 5 s after the end)")
    rows, worst = [], 0.0
    for op, _ in MIX:
        outside = [r.latency for r in records if r.op == op and r.status > 0 and not in_window(r)]
        inside = [r.latency for r in records if r.op == op and r.status > 0 and in_window(r)]
        worst = max(worst, percentile(outside, 99))
        rows.append(
            (
                op,
                len(outside),
                ms(percentile(outside, 50)),
                ms(percentile(outside, 99)),
                len(inside),
                ms(percentile(inside, 50)),
                ms(percentile(inside, 99)),
            )
        )
    say(table(["operation", "outside n", "p50 ms", "p99 ms", "inside n", "p50 ms", "p99 ms"], rows))

    # What the database holds, and what the outbox delivered.
    dsn = db_url.replace("postgresql+psycopg://", "postgresql://")
    acked = {t for c in clients for t in c.acked}
    acked_count = sum(len(c.acked) for c in clients)
    unacked = sum(c.unacked_creates for c in clients)

    def pending() -> int:
        with psycopg.connect(dsn) as conn:
            return conn.execute(
                "SELECT count(*) FROM outbox_messages WHERE delivered_at IS NULL"
            ).fetchone()[0]

    drained_at = None
    try:
        wait_until(lambda: pending() == 0, timeout=90, interval=0.5, message="")
        drained_at = time.monotonic()
    except TimeoutError:
        pass
    with psycopg.connect(dsn) as conn:
        stored = {row[0] for row in conn.execute("SELECT id FROM tickets")}
        outbox = {
            row[0]: row[1]
            for row in conn.execute(
                "SELECT dedup_key, delivered_at IS NOT NULL FROM outbox_messages "
                "WHERE kind = 'ticket_created'"
            )
        }
    expected = {key.split(":", 1)[1] for key in outbox}

    def counts() -> dict[str, ChannelCount]:
        return {name: count_channel(found, expected) for name, found in notices().items()}

    # The last tickets' groups are notified after the outbox drained, and a second
    # replica waits its peer_timeout before it would notify again: wait for every
    # ticket on every channel, then long enough for any late repeat.
    try:
        wait_until(
            lambda: all(expected <= c.notified for c in counts().values()),
            timeout=60,
            interval=0.5,
            message="",
        )
    except TimeoutError:
        pass
    time.sleep(PEER_TIMEOUT_SECONDS + 5)
    by_channel = counts()
    missing = {name: expected - c.notified for name, c in by_channel.items()}

    say("\nTickets")
    say(
        table(
            ["what", "count"],
            [
                ("tickets acknowledged (201, or 200 replay of an Idempotency-Key)", len(acked)),
                ("  acknowledgements (a replay answers an acknowledged ticket again)", acked_count),
                ("tickets in the database afterwards", len(stored)),
                ("  in the database, never acknowledged", len(stored - acked)),
                ("  acknowledged, not in the database", len(acked - stored)),
                ("creates given up unacknowledged", unacked),
                ("outbox messages (ticket_created)", len(outbox)),
                ("  delivered to Alertmanager", sum(outbox.values())),
            ],
        )
    )
    say(
        f"\nNotifications per channel (one group per ticket, {len(expected)} expected each; "
        f"dropped: a repeat a receiver of ours took as one (same group key, fingerprint, "
        f"status and start within {DUPLICATE_WINDOW:g} s), not a delivery)"
    )
    say(
        table(
            [
                "channel",
                "received",
                "tickets notified",
                "tickets repeated",
                "repeats dropped",
                "delivered more than once",
                "never",
            ],
            [
                (
                    f"{name}{' (ours)' if name in OURS else ''}",
                    c.received,
                    len(c.notified),
                    len(c.repeated),
                    c.dropped if name in OURS else "-",
                    len(c.twice),
                    len(missing[name]),
                )
                for name, c in by_channel.items()
            ],
        )
    )
    if drained_at is not None:
        say(f"  (outbox drained {drained_at - (t0 + took):.1f}s after the load ended)")

    say("\nFaults and recovery (seconds from the start of the load)")
    rows = []
    for n, fault in enumerate(faults):
        end = fault.end if fault.end is not None else fault.start
        until = faults[n + 1].start if n + 1 < len(faults) else LOAD
        by_requests = recovery_from_requests(
            Fault(fault.name, fault.start, end), records, t0, until
        )
        in_fault = [r for r in records if t0 + fault.start <= r.at <= t0 + end + GRACE]
        failed = sum(1 for r in in_fault if r.status == -1 or r.status >= 500)
        rows.append(
            (
                fault.name,
                f"{fault.start:.1f}",
                f"{end:.1f}",
                f"{end - fault.start:.1f}",
                f"{by_requests:.1f}" if by_requests is not None else "-",
                f"{fault.recovered - end:.1f}" if fault.recovered else "-",
                failed,
                fault.detail,
            )
        )
    say(
        table(
            [
                "fault",
                "start",
                "end",
                "down s",
                "requests ok after s",
                "component back after s",
                "failed requests",
                "component",
            ],
            rows,
        )
    )
    say(
        "  requests ok after: from the fault's end to the last failed request (no answer, "
        "5xx) of its window"
    )
    found = notices()
    for name, c in by_channel.items():
        if c.repeated:
            times = sorted(n.at for n in found[name] if n.ticket in c.repeated)
            say(
                f"  {name}: notifications of the repeated tickets arrived at (s since the "
                f"load's start): {', '.join(f'{t - wall0:.1f}' for t in times)}"
            )
    say(
        f"  load average of the machine (1 min) before / after the load: "
        f"{load_before:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )

    say()
    say(
        verdict(
            "0 tickets lost, 0 duplicated (acknowledged = in the database)",
            acked == stored and unacked == 0,
            f"{len(acked)} acknowledged, {len(stored)} stored, {len(acked - stored)} lost, "
            f"{len(stored - acked)} unacknowledged, {unacked} given up",
        )
    )
    ours = {name: by_channel[name] for name in OURS}
    say(
        verdict(
            "each outbox message notified exactly once on the channels we own "
            "(on-call webhook, ticket-service receiver)",
            len(outbox) == len(stored)
            and not any(c.twice or missing[name] for name, c in ours.items()),
            f"{len(outbox)} messages; "
            + "; ".join(
                f"{name}: {len(c.notified)} notified, {len(c.twice)} twice, "
                f"{len(missing[name])} never ({c.dropped} repeats dropped)"
                for name, c in ours.items()
            ),
        )
    )
    say(
        "figures (at-least-once delivery, documented and accepted, no target): "
        + "; ".join(
            f"{name}: {len(by_channel[name].notified)} notified, "
            f"{len(by_channel[name].twice)} twice, {len(missing[name])} never"
            for name in CHANNELS
            if name not in OURS
        )
    )
    say(
        verdict(
            "no 5xx but 503 while PostgreSQL is down",
            not bad_5xx,
            f"{len(bad_5xx)} other 5xx; {len(lost)} requests without answer "
            f"(connections cut by the faults)",
        )
    )
    say(
        verdict(
            "p99 under 250 ms per operation outside the fault windows",
            worst < TARGET_P99,
            f"worst p99 {ms(worst)} ms",
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
