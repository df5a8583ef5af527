"""End to end: one partner's failing transactions reach that partner's own webhook, signed.

platform DB ─> exporter ─> Prometheus (rules/, partner rules) ─┬─> Alertmanager 1 ─┐
                                                              └─> Alertmanager 2 ─┤ (not clustered:
ticketing (gunicorn) <── /internal/alertmanager/partner-alerts ─────────────────────┘  both notify)
   └─ outbox ─> HTTP sink: partner A at /a, partner B at /b

Everything is the project's own configuration, with short intervals: the
exporter and Prometheus at 1 s, PartnerTransactionFailureRatioHigh ``for: 2s``
in a copy of rules/, Alertmanager rendered by alertmanager/render.py with
group_wait 1 s and group_interval 2 s, and the partner route's
repeat_interval (the per-partner cooldown, 5m shipped) at REPEAT seconds.
Two Alertmanagers that do not gossip both send every notification, which is
the worst case of the HA pair and of a retry: the ticket service must turn
each pair into one partner delivery.

Shown: A's ratio crossing 10 % reaches A's endpoint only, signed (checked as a
partner would), once, and again only after the repeat interval; resolved
reaches it too; B gets nothing; a private-address URL is refused with a 422;
an endpoint answering 500 twice then 200 gets its event on the third attempt.
Prints the time from the crossing to A's delivery.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from alertmanager.render import render as render_alertmanager
from prometheus.render import render as render_prometheus
from tests.harness import free_port, http_ready, wait_until
from tests.harness.app import create_test_app, dispose, ticketing_config
from tests.harness.monitoring import EVALUATION_INTERVAL, SCRAPE_INTERVAL, exporter_config
from tests.harness.outbox import quick_stop
from tests.harness.partner_platform import PlatformDatabase
from tests.harness.seed import partners
from tests.harness.webhooks import partner_verifies

ROOT = Path(__file__).resolve().parents[2]
FOR = 2
GROUP_WAIT = 1
GROUP_INTERVAL = 2
REPEAT = 10  # the partner route's repeat_interval here (5m shipped)
DUPLICATE_WINDOW = 4  # < REPEAT; covers the two Alertmanagers' skew
TOKEN = "e2e-partner-receiver-token-0123456789"
ALERT = "PartnerTransactionFailureRatioHigh"

pytestmark = pytest.mark.slow


def copy_rules(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    found = False
    for path in sorted((ROOT / "rules").glob("*.rules.yml")):
        doc = yaml.safe_load(path.read_text())
        for group in doc["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == ALERT:
                    rule["for"] = f"{FOR}s"
                    found = True
        (dest / path.name).write_text(yaml.safe_dump(doc, sort_keys=False))
    assert found
    return dest


def alertmanager_config(dest: Path, sink, receiver_url: str) -> Path:
    secrets = dest / "secrets"
    secrets.mkdir(parents=True)
    for name in ("smtp_password", "oncall_webhook_token"):
        (secrets / name).write_text("unused\n")
    (secrets / "slack_api_url").write_text(f"{sink.url}/slack\n")
    (secrets / "partner_webhooks_token").write_text(TOKEN)
    shipped = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())
    hooks = {
        r["name"]: f"{sink.url}/oncall" for r in shipped["receivers"] if r.get("webhook_configs")
    }
    hooks["partner-webhooks"] = receiver_url
    config = yaml.safe_load(
        render_alertmanager(
            secrets_dir=secrets,
            smtp_smarthost="127.0.0.1:1",
            webhook_urls=hooks,
            timings={
                "group_wait": f"{GROUP_WAIT}s",
                "group_interval": f"{GROUP_INTERVAL}s",
                "repeat_interval": "1h",
            },
        )
    )
    [route] = [r for r in config["route"]["routes"] if r.get("receiver") == "partner-webhooks"]
    route["repeat_interval"] = f"{REPEAT}s"
    path = dest / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def events_at(sink, path: str, event_type: str) -> list:
    return [r for r in sink.received(path) if r.json.get("type") == event_type]


def test_partner_alert_reaches_only_that_partner_signed_once_per_cooldown_and_resolves(
    tmp_path, processes, prometheus_factory, alertmanager_factory, http_sink, redis_url, capsys
):
    started = time.monotonic()
    platform = PlatformDatabase(tmp_path / "platform.db")  # partners 1 and 2, 10 completed each

    # --- ticketing: migrated SQLite, partners 1 (A) and 2 (B) like the platform's.
    ticketing_db = f"sqlite:///{tmp_path / 'ticketing.db'}"
    setup = create_test_app(ticketing_config(ticketing_db, ticketing={}))
    keys = partners(setup)
    assert (keys.a_id, keys.b_id) == (1, 2)
    dispose(setup)
    token_file = tmp_path / "receiver_token"
    token_file.write_text(TOKEN)
    ticketing_yml = tmp_path / "ticketing.yml"
    ticketing_yml.write_text(
        yaml.safe_dump(
            {
                "outbox": {"poll_interval": "200ms"},
                "webhooks": {
                    "require_https": False,
                    "allowed_networks": ["127.0.0.1/32"],
                    "initial_backoff": "1s",
                    "max_backoff": "2s",
                    "duplicate_window": f"{DUPLICATE_WINDOW}s",
                    "receiver_token_file": str(token_file),
                },
            }
        )
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    ticketing = processes.start(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(ROOT / "ticketing" / "runtime" / "gunicorn.conf.py"),
        ],
        tmp_path,
        name="ticketing",
        ready=http_ready(f"{base}/healthz"),
        env={
            "TICKETING_BIND": f"127.0.0.1:{port}",
            "TICKETING_WORKERS": "2",
            "TICKETING_DATABASE_URL": ticketing_db,
            "TICKETING_CONFIG": str(ticketing_yml),
            "ALERTMANAGER_URL": f"http://127.0.0.1:{free_port()}",
            "REDIS_URL": redis_url,
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "ticketing-metrics"),
        },
    )

    def api(method, path, key, **kwargs):
        return requests.request(
            method, base + path, headers={"X-API-Key": key}, timeout=10, **kwargs
        )

    # --- the partners register their endpoints (A's secret is what A verifies with).
    a = api(
        "post",
        "/api/v1/webhooks",
        keys.a,
        json={"url": f"{http_sink.url}/a", "events": ["alert.firing", "alert.resolved"]},
    )
    assert a.status_code == 201, a.text
    a_secret = a.json()["secret"]
    b = api("post", "/api/v1/webhooks", keys.b, json={"url": f"{http_sink.url}/b"})
    assert b.status_code == 201, b.text
    # The shipped guard still holds for other addresses: a private URL is a JSON 422.
    private = api("post", "/api/v1/webhooks", keys.a, json={"url": "http://10.1.2.3/hook"})
    assert private.status_code == 422 and private.json()["error"]["code"] == "unsafe_url"
    metadata = api(
        "post", "/api/v1/webhooks", keys.a, json={"url": "http://169.254.169.254/latest/meta-data/"}
    )
    assert metadata.status_code == 422 and metadata.json()["error"]["code"] == "unsafe_url"

    # --- a flaky endpoint: 500, 500, then 200 (the outbox retries with backoff).
    flaky = api(
        "post",
        "/api/v1/webhooks",
        keys.a,
        json={"url": f"{http_sink.url}/flaky", "events": ["ticket.status_changed"]},
    )
    http_sink.script("/flaky", [500, 500])
    ping = api("post", f"/api/v1/webhooks/{flaky.json()['id']}/ping", keys.a)
    assert ping.status_code == 202
    attempts = http_sink.wait_for(3, timeout=30, path="/flaky")
    assert {r.json["id"] for r in attempts} == {ping.json()["event_id"]}

    # The third attempt's log entry is written once its answer is in: the sink has the
    # request a moment before the log has the entry.
    def delivery_log() -> list:
        path = f"/api/v1/webhooks/{flaky.json()['id']}/deliveries"
        return api("get", path, keys.a).json()["items"]

    wait_until(lambda: len(delivery_log()) == 3, timeout=15, message="three logged attempts")
    log = delivery_log()
    assert [(e["attempt"], e["result"], e["status_code"]) for e in log] == [
        (3, "success", 200),
        (2, "retry", 500),
        (1, "retry", 500),
    ]

    # --- exporter, two Alertmanagers, Prometheus.
    exporter_port = free_port()
    processes.start(
        [sys.executable, "-m", "exporter", "--config", str(exporter_config(tmp_path / "exp.yml"))],
        tmp_path,
        name="exporter",
        ready=http_ready(f"http://127.0.0.1:{exporter_port}/metrics"),
        env={
            "EXPORTER_LISTEN": f"127.0.0.1:{exporter_port}",
            "PLATFORM_DB_URL": platform.url,
            "TICKETING_DB_URL": ticketing_db,
            "REDIS_URL": redis_url,
            "PLATFORM_API_URL": f"http://127.0.0.1:{free_port()}",
        },
    )
    receiver_url = f"{base}/internal/alertmanager/partner-alerts"
    ams = [
        alertmanager_factory(alertmanager_config(tmp_path / f"am{i}", http_sink, receiver_url))
        for i in (1, 2)
    ]
    prom_port = free_port()
    prom = prometheus_factory(
        config=render_prometheus(
            targets={
                "prometheus": [f"127.0.0.1:{prom_port}"],
                "alertmanager": [am.address for am in ams],
                "exporter": [f"127.0.0.1:{exporter_port}"],
                "ticketing": [f"127.0.0.1:{port}"],
            },
            alertmanagers=[am.address for am in ams],
            rules_dir=copy_rules(tmp_path / "rules"),
            scrape_interval=f"{SCRAPE_INTERVAL}s",
            evaluation_interval=f"{EVALUATION_INTERVAL}s",
        ),
        port=prom_port,
    )
    prom.wait_for_value('platform_partner_transactions_total{partner="1",status="completed"}', 10)
    prom.wait_for('up{job="ticketing"} == 1')
    time.sleep(3)  # a few samples of the healthy counters, so rate() sees the jump
    ready_at = time.monotonic()

    # --- partner A's transactions fail.
    crossed = platform.add_transactions(1, "failed", 30)
    [first] = http_sink.wait_for(
        1, timeout=60, path="/a", predicate=lambda r: r.json.get("type") == "alert.firing"
    )
    delay = first.received_at - crossed
    assert partner_verifies(a_secret, first.headers, first.body)
    event = first.json
    assert event["partner_id"] == 1 and event["data"]["alert"] == ALERT
    assert event["data"]["summary"].endswith("of your transactions fail")
    assert "team" not in event["data"] and "runbook" not in first.body.decode()

    # Both Alertmanagers notified the ticket service; A got one delivery.
    prom.wait_for('sum(partner_alert_notifications_total{result="duplicate"}) >= 1', timeout=30)
    time.sleep(REPEAT - GROUP_INTERVAL - 2)
    assert len(events_at(http_sink, "/a", "alert.firing")) == 1
    # ... and again after the repeat interval (the per-partner cooldown), once.
    second = wait_until(
        lambda: events_at(http_sink, "/a", "alert.firing")[1:2],
        timeout=REPEAT + 4 * GROUP_INTERVAL,
        interval=0.2,
        message="the repeat",
    )[0]
    gap = second.received_at - first.received_at
    assert gap >= REPEAT - 1, gap
    assert second.json["id"] != event["id"]
    assert partner_verifies(a_secret, second.headers, second.body)

    # --- recovery: many completed transactions bring A's ratio under 10 %.
    recovered = platform.add_transactions(1, "completed", 600)
    [resolved] = http_sink.wait_for(
        1, timeout=60, path="/a", predicate=lambda r: r.json.get("type") == "alert.resolved"
    )
    resolve_delay = resolved.received_at - recovered
    assert partner_verifies(a_secret, resolved.headers, resolved.body)
    assert resolved.json["data"]["ends_at"]
    time.sleep(2 * GROUP_INTERVAL)
    assert len(events_at(http_sink, "/a", "alert.resolved")) == 1
    firing_count = len(events_at(http_sink, "/a", "alert.firing"))
    assert firing_count in (2, 3), firing_count  # a third repeat may fall before the resolve
    # Partner B heard nothing at all.
    assert http_sink.received("/b") == []
    # The alert reached the support team's route too (Slack, through the sink).
    assert any(ALERT in r.body.decode() for r in http_sink.received("/slack"))

    quick_stop(ticketing)
    budget = SCRAPE_INTERVAL + 1 + SCRAPE_INTERVAL + EVALUATION_INTERVAL + FOR + GROUP_WAIT
    with capsys.disabled():
        print(
            f"\n  partner webhook end to end (stack ready after {ready_at - started:.1f}s):"
            f"\n    {ALERT} firing   -> partner A's endpoint {delay:5.1f}s   (intervals add up"
            f" to {budget:.1f}s: exporter + scrape + eval + for + group_wait, then outbox)"
            f"\n    repeat after the cooldown        {gap:5.1f}s   (repeat_interval {REPEAT}s)"
            f"\n    {ALERT} resolved -> partner A's endpoint {resolve_delay:5.1f}s"
        )
