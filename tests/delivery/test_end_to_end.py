"""End to end: the platform degrades and on-call hears of it, once, on every channel.

Everything is real and everything is the project's own configuration:

platform DB (SQLite) ─┐
platform API (/healthz, latency set by the test) ─┼─> exporter ─┐
ticketing (gunicorn) ──── outbox ─────────────────────────────┐  ├─> Prometheus (rules/)
                      └──────── /metrics ───────────────────┼──┘        │
                                                             └─> Alertmanager (alertmanager/)
                                                                 ├─> email  -> SMTP sink
                                                                 ├─> Slack  -> HTTP sink /slack
                                                                 └─> webhook -> HTTP sink /oncall

- the exporter runs the shipped ``exporter/partnerwatch.yml`` with every
  interval shortened to 1 s (the probe to 2 s: it must outlast a slow answer);
- Prometheus runs the shipped ``prometheus/prometheus.yml`` rendered with
  loopback targets, 1 s scrape and evaluation intervals, and a copy of the
  repository's ``rules/``. The rules' ``for:`` durations are minutes, so in
  the copy the alerts under test (EnergyPoolCritical, PlatformApiSlow) get
  ``for: 2s`` and EnergyPoolLow ``for: 3s``. In the shipped file both energy
  alerts have the same ``for:`` and fire together; Alertmanager's inhibitor
  learns of the critical asynchronously, which the shipped group_wait (tens of
  seconds) leaves ample time for but the 1 s used here does not on a loaded
  machine, so the warning comes one evaluation later. Every other alert keeps
  its own ``for:``;
- Alertmanager runs the shipped ``alertmanager/alertmanager.yml`` rendered by
  ``alertmanager/render.py``: secrets files written by the test (the Slack URL
  points at the HTTP sink), the SMTP smarthost and the on-call webhook at the
  sinks, group_wait 1 s and group_interval 2 s wherever they are set.

The platform holds 250 partners, skewed like a real one
(tests/harness/partner_platform.py), and the exporter watches every one of
them. The test drives the energy pool from 80 % to 10 % and the API from
instant to 1.3 s, then back, and makes a small partner (3 transactions so
far) fail 5 in a row, and asserts: that partner's
PartnerTransactionFailureRatioHigh (``for: 2s`` in the copy) reaches the
partner-webhooks receiver (the ticket service's partner webhooks; the HTTP
sink's /partner-webhooks here, with the receiver's bearer token), grouped by
that partner and naming no other, and its team (support) by email; the
critical energy alert reaches on-call by email, Slack and webhook, once; the
warning of the same pool is inhibited and reaches nobody; the slow API
reaches the on-call Slack channel, once; each group is resolved once after
recovery. A critical ticket filed meanwhile goes
through the ticketing outbox to the same Alertmanager and reaches on-call and
support. It prints the time from each threshold crossing to each delivery
next to the sum of the configured intervals.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from prometheus.render import render as render_prometheus
from tests.harness import free_port, http_ready
from tests.harness.app import create_test_app, dispose, ticketing_config
from tests.harness.monitoring import (
    EVALUATION_INTERVAL,
    EXPORTER_INTERVAL,
    FOR,
    GROUP_INTERVAL,
    GROUP_WAIT,
    PROBE_INTERVAL,
    ROOT,
    SCRAPE_INTERVAL,
    alertmanager_config,
    copy_rules,
    count,
    deliveries,
    exporter_config,
    wait_for_deliveries,
)
from tests.harness.outbox import quick_stop
from tests.harness.partner_platform import PlatformAPI, PlatformDatabase
from tests.harness.seed import seed

SLOW_API = 1.3  # seconds: over the 1 s threshold, under the probe's 2 s timeout
PARTNERS = 250
SMALL_PARTNER = 200  # 3 completed transactions before the test (partner_platform.py)
PARTNER_ALERT = "PartnerTransactionFailureRatioHigh"
PARTNER_TOKEN = "e2e-partner-webhooks-token"

pytestmark = pytest.mark.slow


# ------------------------------------------------------------------ configuration copies


# ------------------------------------------------------------------ what reached the sinks


def partner_webhooks_at(config: Path, sink) -> Path:
    """The ticket service's receivers post to the sink, each at a path of its own:
    partner-webhooks (the partner's webhooks) at /partner-webhooks, status-incidents
    at /status-incidents, with the token the ticket service would check."""
    (config.parent / "secrets" / "partner_webhooks_token").write_text(PARTNER_TOKEN + "\n")
    doc = yaml.safe_load(config.read_text())
    for receiver in doc["receivers"]:
        if receiver["name"] in ("partner-webhooks", "status-incidents"):
            for hook in receiver["webhook_configs"]:
                hook["url"] = f"{sink.url}/{receiver['name']}"
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    return config


def partner_alert_quick(rules: Path) -> Path:
    """The small partner's alert gets the same short ``for:`` as the alerts under test."""
    path = rules / "partners.rules.yml"
    doc = yaml.safe_load(path.read_text())
    [rule] = [r for g in doc["groups"] for r in g["rules"] if r.get("alert") == PARTNER_ALERT]
    rule["for"] = f"{FOR}s"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return rules


# ------------------------------------------------------------------ the test

ONCALL_EMAIL = "email oncall@partnerwatch.example"
SUPPORT_EMAIL = "email support@partnerwatch.example"
ONCALL_SLACK = "slack #partnerwatch-oncall"
ALERTS_SLACK = "slack #partnerwatch-alerts"
SUPPORT_SLACK = "slack #partnerwatch-support"


def test_energy_pool_and_slow_api_reach_on_call_once_and_resolve(
    tmp_path,
    processes,
    prometheus_factory,
    alertmanager_factory,
    smtp_sink,
    http_sink,
    redis_url,
    capsys,
):
    started = time.monotonic()
    platform = PlatformDatabase(
        tmp_path / "platform.db", capacity=1000, available=800, partners=PARTNERS
    )
    api = PlatformAPI().start()
    try:
        _run(
            tmp_path,
            processes,
            prometheus_factory,
            alertmanager_factory,
            smtp_sink,
            http_sink,
            redis_url,
            capsys,
            platform,
            api,
            started,
        )
    finally:
        api.stop()


def _run(
    tmp_path,
    processes,
    prometheus_factory,
    alertmanager_factory,
    smtp_sink,
    http_sink,
    redis_url,
    capsys,
    platform,
    api,
    started,
):
    # --- Alertmanager, with the project's routes, receivers and inhibitions.
    am = alertmanager_factory(
        partner_webhooks_at(alertmanager_config(tmp_path / "am", smtp_sink, http_sink), http_sink)
    )

    # --- ticketing under gunicorn, on a migrated SQLite database.
    ticketing_db = f"sqlite:///{tmp_path / 'ticketing.db'}"
    setup_app = create_test_app(ticketing_config(ticketing_db, ticketing={}))
    keys = seed(setup_app)
    dispose(setup_app)
    ticketing_port = free_port()
    ticketing_yml = tmp_path / "ticketing.yml"
    # Outbox alerts stay active longer than the test, so no "resolved" notice
    # of the ticket's alert mixes in.
    ticketing_yml.write_text(
        yaml.safe_dump({"outbox": {"poll_interval": "500ms", "alert_ttl": "10m"}})
    )
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
        ready=http_ready(f"http://127.0.0.1:{ticketing_port}/healthz"),
        env={
            "TICKETING_BIND": f"127.0.0.1:{ticketing_port}",
            "TICKETING_WORKERS": "1",
            "TICKETING_DATABASE_URL": ticketing_db,
            "TICKETING_CONFIG": str(ticketing_yml),
            "ALERTMANAGER_URL": am.url,
            "REDIS_URL": redis_url,
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "ticketing-metrics"),
        },
    )

    # --- the exporter over the platform the test controls.
    exporter_port = free_port()
    processes.start(
        [
            sys.executable,
            "-m",
            "exporter",
            "--config",
            str(exporter_config(tmp_path / "exporter.yml")),
        ],
        tmp_path,
        name="exporter",
        ready=http_ready(f"http://127.0.0.1:{exporter_port}/metrics"),
        env={
            "EXPORTER_LISTEN": f"127.0.0.1:{exporter_port}",
            "PLATFORM_DB_URL": platform.url,
            "TICKETING_DB_URL": ticketing_db,
            "REDIS_URL": redis_url,
            "PLATFORM_API_URL": api.url,
        },
    )

    # --- Prometheus: the project's scrape jobs and rules, on loopback.
    prom_port = free_port()
    prom = prometheus_factory(
        config=render_prometheus(
            targets={
                "prometheus": [f"127.0.0.1:{prom_port}"],
                "alertmanager": [am.address],
                "exporter": [f"127.0.0.1:{exporter_port}"],
                "ticketing": [f"127.0.0.1:{ticketing_port}"],
            },
            alertmanagers=[am.address],
            rules_dir=partner_alert_quick(copy_rules(tmp_path / "rules")),
            scrape_interval=f"{SCRAPE_INTERVAL}s",
            evaluation_interval=f"{EVALUATION_INTERVAL}s",
        ),
        port=prom_port,
    )

    # Healthy to begin with, as Prometheus sees it, every partner watched.
    prom.wait_for_value('platform:energy_pool_available:ratio{pool="main"}', 0.8)
    prom.wait_for_value('count(platform_partner_transactions_total{status="completed"})', PARTNERS)
    prom.wait_for_value(
        f'platform_partner_transactions_total{{partner="{SMALL_PARTNER}",status="failed"}}', 0
    )
    time.sleep(2)  # a few samples of the small partner's counters before it fails
    prom.wait_for_value('platform_api_probe_success{target="platform_api"}', 1)
    prom.wait_for('up{job="ticketing"} == 1')
    ready_at = time.monotonic()

    # --- The platform degrades (and a partner files a critical ticket meanwhile).
    crossed_pool = platform.set_available(100)  # 10 %: under 20 %
    api.delay = SLOW_API
    crossed_api = time.time()
    crossed_partner = platform.add_transactions(SMALL_PARTNER, "failed", 5)
    ticket = requests.post(
        f"http://127.0.0.1:{ticketing_port}/api/v1/tickets",
        headers={"X-API-Key": keys.partner},
        json={"title": "Production down: energy draws fail", "description": "Since 09:00."},
        timeout=10,
    )
    assert ticket.status_code == 201, ticket.text
    ticket = ticket.json()
    assert ticket["priority"] == "critical"
    filed_at = time.time()

    firing = wait_for_deliveries(
        smtp_sink,
        http_sink,
        {
            (ONCALL_EMAIL, "firing", "EnergyPoolCritical"),
            (ONCALL_SLACK, "firing", "EnergyPoolCritical"),
            ("webhook", "firing", "EnergyPoolCritical"),
            (ALERTS_SLACK, "firing", "PlatformApiSlow"),
            (SUPPORT_EMAIL, "firing", "SupportTicketCreated"),
            (SUPPORT_SLACK, "firing", "SupportTicketCreated"),
            (ONCALL_EMAIL, "firing", "SupportTicketCreated"),
            ("webhook", "firing", "SupportTicketCreated"),
            (SUPPORT_EMAIL, "firing", PARTNER_ALERT),
        },
    )
    # The small partner's alert reached the partner webhooks, in its own group.
    [partner_post] = http_sink.wait_for(
        1,
        timeout=60,
        path="/partner-webhooks",
        predicate=lambda r: r.json.get("groupLabels", {}).get("partner") == str(SMALL_PARTNER),
    )
    assert partner_post.headers.get("Authorization") == f"Bearer {PARTNER_TOKEN}"
    assert partner_post.json["status"] == "firing"
    assert {a["labels"]["alertname"] for a in partner_post.json["alerts"]} == {PARTNER_ALERT}
    assert {a["labels"]["partner"] for a in partner_post.json["alerts"]} == {str(SMALL_PARTNER)}
    assert partner_post.json["alerts"][0]["annotations"]["summary"] == (
        "100% of your transactions fail"
    )

    # The warning of the same pool fires in Prometheus but Alertmanager mutes it.
    [low] = am.alerts(alertname="EnergyPoolLow")
    assert low["status"]["state"] == "suppressed" and low["status"]["inhibitedBy"], low
    assert (
        "Energy pool main is at 10%" in firing[(ONCALL_EMAIL, "firing", "EnergyPoolCritical")].text
    )
    assert (
        f"ticket #{ticket['id']}" in firing[(SUPPORT_EMAIL, "firing", "SupportTicketCreated")].text
    )
    # The outbox delivered: nothing pending in the ticketing database, as the
    # exporter reports it, and ticketing counted the delivery.
    prom.wait_for_value("support_outbox_pending", 0)
    prom.wait_for_value('sum(notifications_delivered_total{kind="ticket_created"})', 1)

    # --- Recovery.
    recovered_pool = platform.set_available(800)
    api.delay = 0
    recovered_api = time.time()
    resolved = wait_for_deliveries(
        smtp_sink,
        http_sink,
        {
            (ONCALL_EMAIL, "resolved", "EnergyPoolCritical"),
            (ONCALL_SLACK, "resolved", "EnergyPoolCritical"),
            ("webhook", "resolved", "EnergyPoolCritical"),
            (ALERTS_SLACK, "resolved", "PlatformApiSlow"),
        },
    )

    # Nothing more arrives for these groups: once per group and status.
    time.sleep(2 * GROUP_INTERVAL + 1)
    for channel, alertname in [
        (ONCALL_EMAIL, "EnergyPoolCritical"),
        (ONCALL_SLACK, "EnergyPoolCritical"),
        ("webhook", "EnergyPoolCritical"),
        (ALERTS_SLACK, "PlatformApiSlow"),
    ]:
        for status in ("firing", "resolved"):
            assert count(smtp_sink, http_sink, channel, status, alertname) == 1, (
                channel,
                status,
                alertname,
            )
    for channel in (SUPPORT_EMAIL, SUPPORT_SLACK, ONCALL_EMAIL, "webhook"):
        assert count(smtp_sink, http_sink, channel, "firing", "SupportTicketCreated") == 1
    # The inhibited warning reached no channel at all.
    assert not [d for d in deliveries(smtp_sink, http_sink) if d.alertname == "EnergyPoolLow"]

    quick_stop(ticketing)

    # --- How long it took, next to what the configuration allows for.
    pool_budget = EXPORTER_INTERVAL + SCRAPE_INTERVAL + EVALUATION_INTERVAL + FOR + GROUP_WAIT
    api_budget = PROBE_INTERVAL + SCRAPE_INTERVAL + EVALUATION_INTERVAL + FOR + GROUP_WAIT
    resolve_budget = EXPORTER_INTERVAL + SCRAPE_INTERVAL + EVALUATION_INTERVAL + GROUP_INTERVAL
    rows = [
        (
            "EnergyPoolCritical firing",
            crossed_pool,
            firing,
            "firing",
            "EnergyPoolCritical",
            (ONCALL_EMAIL, ONCALL_SLACK, "webhook"),
            pool_budget,
            "exporter + scrape + eval + for + group_wait",
        ),
        (
            "PlatformApiSlow firing",
            crossed_api,
            firing,
            "firing",
            "PlatformApiSlow",
            (ALERTS_SLACK,),
            api_budget + SLOW_API,
            "probe + answer + scrape + eval + for + group_wait",
        ),
        (
            "Partner alert (small one)",
            crossed_partner,
            firing,
            "firing",
            PARTNER_ALERT,
            (SUPPORT_EMAIL,),
            EXPORTER_INTERVAL + SCRAPE_INTERVAL + EVALUATION_INTERVAL + FOR + GROUP_WAIT,
            "exporter + scrape + eval + for + group_wait",
        ),
        (
            "SupportTicketCreated",
            filed_at,
            firing,
            "firing",
            "SupportTicketCreated",
            (SUPPORT_EMAIL, SUPPORT_SLACK, ONCALL_EMAIL, "webhook"),
            GROUP_WAIT,
            "outbox (immediate) + group_wait",
        ),
        (
            "EnergyPoolCritical resolved",
            recovered_pool,
            resolved,
            "resolved",
            "EnergyPoolCritical",
            (ONCALL_EMAIL, ONCALL_SLACK, "webhook"),
            resolve_budget,
            "exporter + scrape + eval + group_interval",
        ),
        (
            "PlatformApiSlow resolved",
            recovered_api,
            resolved,
            "resolved",
            "PlatformApiSlow",
            (ALERTS_SLACK,),
            PROBE_INTERVAL + SCRAPE_INTERVAL + EVALUATION_INTERVAL + GROUP_INTERVAL,
            "probe + scrape + eval + group_interval",
        ),
    ]
    with capsys.disabled():
        print(
            f"\n  end-to-end delivery times (stack ready after "
            f"{ready_at - started:.1f}s, whole test {time.monotonic() - started:.1f}s):"
        )
        for label, since, got, status, alertname, channels, budget, parts in rows:
            for channel in channels:
                delay = got[(channel, status, alertname)].at - since
                print(
                    f"    {label:28} -> {channel:36} {delay:5.1f}s   "
                    f"(intervals add up to {budget:.1f}s: {parts})"
                )
