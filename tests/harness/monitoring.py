"""The monitoring stack as the end-to-end tests run it: configuration copies with short timings,
and the HA stack of tests/ha."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from alertmanager.render import render as render_alertmanager
from tests.harness import (
    Alertmanager,
    HTTPSink,
    ManagedProcess,
    Prometheus,
    SMTPSink,
    VictoriaMetrics,
    wait_until,
)
from tests.harness.partner_platform import PlatformAPI, PlatformDatabase

ROOT = Path(__file__).resolve().parents[2]


# The configured intervals (seconds) that add up to the expected delay.
EXPORTER_INTERVAL = 1


PROBE_INTERVAL = 2


SCRAPE_INTERVAL = 1


EVALUATION_INTERVAL = 1


FOR = 2


GROUP_WAIT = 1


GROUP_INTERVAL = 2


#: ``for:`` of the alerts under test in the rules copy (the shipped values are minutes).
ALERTS_UNDER_TEST = {
    "EnergyPoolLow": f"{FOR + 1}s",
    "EnergyPoolCritical": f"{FOR}s",
    "PlatformApiSlow": f"{FOR}s",
}


WEBHOOK_TOKEN = "e2e-oncall-token"


def copy_rules(dest: Path) -> Path:
    """The repository's rules with a short ``for:`` on the alerts under test."""
    dest.mkdir(parents=True, exist_ok=True)
    seen = set()
    for path in sorted((ROOT / "rules").glob("*.rules.yml")):
        doc = yaml.safe_load(path.read_text())
        for group in doc["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") in ALERTS_UNDER_TEST:
                    rule["for"] = ALERTS_UNDER_TEST[rule["alert"]]
                    seen.add(rule["alert"])
        (dest / path.name).write_text(yaml.safe_dump(doc, sort_keys=False))
    assert seen == set(ALERTS_UNDER_TEST), (
        f"alerts missing from rules/: {set(ALERTS_UNDER_TEST) - seen}"
    )
    return dest


def exporter_config(dest: Path) -> Path:
    """The shipped exporter config with every interval shortened."""
    config = yaml.safe_load((ROOT / "exporter" / "partnerwatch.yml").read_text())
    for name, collector in config["collectors"].items():
        seconds = PROBE_INTERVAL if name == "http_probe" else EXPORTER_INTERVAL
        collector["interval"] = collector["timeout"] = f"{seconds}s"
    for query in config["queries"].values():
        query["interval"] = query["timeout"] = f"{EXPORTER_INTERVAL}s"
    dest.write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


def alertmanager_config(
    dest: Path, smtp_sink, http_sink, group_interval: float = GROUP_INTERVAL
) -> Path:
    secrets = dest / "secrets"
    secrets.mkdir(parents=True)
    (secrets / "smtp_password").write_text("unused-by-the-sink\n")
    (secrets / "slack_api_url").write_text(f"{http_sink.url}/slack\n")
    (secrets / "oncall_webhook_token").write_text(WEBHOOK_TOKEN + "\n")
    # Every webhook receiver posts to the sink: the heartbeat at /heartbeat, the
    # status page's at /status-incidents, the on-call ones (alerts and ticketing
    # events alike) at /oncall.
    shipped = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())
    paths = {"heartbeat": "heartbeat", "status-incidents": "status-incidents"}
    hooks = {
        r["name"]: f"{http_sink.url}/{paths.get(r['name'], 'oncall')}"
        for r in shipped["receivers"]
        if r.get("webhook_configs")
    }
    assert "heartbeat" in hooks and len(hooks) > 1, hooks
    text = render_alertmanager(
        secrets_dir=secrets,
        smtp_smarthost=smtp_sink.address,
        webhook_urls=hooks,
        timings={
            "group_wait": f"{GROUP_WAIT}s",
            "group_interval": f"{group_interval}s",
            "repeat_interval": "1h",
        },
    )
    path = dest / "alertmanager.yml"
    path.write_text(text)
    return path


@dataclass
class HAMonitoring:
    platform: PlatformDatabase
    api: PlatformAPI
    smtp: SMTPSink
    http: HTTPSink
    alertmanagers: list[Alertmanager]
    prometheus: dict[str, Prometheus]
    vm: VictoriaMetrics
    exporter: ManagedProcess
    targets: dict[str, list[str]] = field(default_factory=dict)

    def reset(self) -> None:
        """Healthy platform, every part running, the sinks emptied."""
        self.platform.set_available(800)
        self.api.delay = 0
        for prom in self.prometheus.values():
            if not prom.process.running():
                prom.start()
        if not all(am.process.running() for am in self.alertmanagers):
            # A member came back from a crash: start the whole cluster afresh. A
            # restarted member has a new peer name, and until the gossip has
            # caught up its peer may not see what it notified and notify again
            # (Alertmanager's cluster is at-least-once; docs/deployment.md).
            for am in self.alertmanagers:
                if am.process.running():
                    am.stop()
            for am in self.alertmanagers:
                am.start()

        # Every member settled and seeing the same members: a restarted member
        # has a new peer name, and until both agree on the member list both can
        # take the first position and notify.
        def cluster_formed() -> bool:
            views = []
            for am in self.alertmanagers:
                status = am.cluster_status()
                names = frozenset(p["name"] for p in status.get("peers") or [])
                if status.get("status") != "ready" or len(names) != len(self.alertmanagers):
                    return False
                views.append(names)
            return len(set(views)) == 1

        wait_until(cluster_formed, timeout=60, message="the Alertmanager cluster to re-form")
        for prom in self.prometheus.values():
            prom.wait_for(
                'ALERTS{alertname=~"EnergyPool.*|PlatformApiSlow"}', lambda r: not r, timeout=60
            )
        for am in self.alertmanagers:
            wait_until(
                lambda am=am: (
                    not [
                        a
                        for a in am.alerts()
                        if a["labels"]["alertname"]
                        in ("EnergyPoolCritical", "EnergyPoolLow", "PlatformApiSlow")
                    ]
                ),
                timeout=60,
                message="Alertmanager to resolve the alerts under test",
            )
        self.smtp.clear()
        self.http.clear()


_TITLE = re.compile(r"^\[(FIRING|RESOLVED)[^\]]*\] (\w+)")


@dataclass(frozen=True)
class Delivery:
    channel: str  # "email oncall@...", "slack #channel", "webhook"
    status: str  # "firing" / "resolved"
    alertname: str
    at: float
    text: str


def deliveries(smtp_sink, http_sink) -> list[Delivery]:
    found = []
    for mail in list(smtp_sink.messages):
        match = _TITLE.match(mail.subject)
        if match:
            for to in mail.rcpt_tos:
                found.append(
                    Delivery(
                        f"email {to}",
                        match[1].lower(),
                        match[2],
                        mail.received_at,
                        mail.subject + "\n" + mail.text(),
                    )
                )
    for post in http_sink.received("/slack"):
        for attachment in post.json.get("attachments", []):
            match = _TITLE.match(attachment.get("title", ""))
            if match:
                found.append(
                    Delivery(
                        f"slack {post.json.get('channel')}",
                        match[1].lower(),
                        match[2],
                        post.received_at,
                        attachment["title"] + "\n" + attachment.get("text", ""),
                    )
                )
    for post in http_sink.received("/oncall"):
        body = post.json
        assert post.headers.get("Authorization") == f"Bearer {WEBHOOK_TOKEN}"
        found.append(
            Delivery(
                "webhook",
                body["status"],
                body["groupLabels"].get("alertname", ""),
                post.received_at,
                str(body["alerts"]),
            )
        )
    return found


def wait_for_deliveries(
    smtp_sink, http_sink, expected: set[tuple[str, str, str]], timeout: float = 45
) -> dict[tuple[str, str, str], Delivery]:
    """Wait until each (channel, status, alertname) has arrived; return the first of each."""

    def arrived():
        got = {}
        for d in sorted(deliveries(smtp_sink, http_sink), key=lambda d: d.at):
            got.setdefault((d.channel, d.status, d.alertname), d)
        return got if expected <= set(got) else None

    try:
        return wait_until(arrived, timeout=timeout, interval=0.2, message="notifications")
    except TimeoutError:
        seen = sorted(
            {(d.channel, d.status, d.alertname) for d in deliveries(smtp_sink, http_sink)}
        )
        raise AssertionError(f"missing {sorted(expected - set(seen))}; received {seen}") from None


def count(smtp_sink, http_sink, channel: str, status: str, alertname: str) -> int:
    return sum(
        1
        for d in deliveries(smtp_sink, http_sink)
        if (d.channel, d.status, d.alertname) == (channel, status, alertname)
    )
