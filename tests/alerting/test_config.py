"""The alerting configuration: Prometheus, the rules, Alertmanager and the runbooks.

The official tools judge the files (``promtool check config``, ``promtool check
rules``, ``promtool test rules``, ``amtool check-config``, ``amtool config routes
test``); the rest checks the conventions the tools cannot: every alert is
labelled, annotated and documented, every alert is unit-tested both firing
and quiet, every name a rule reads is in the metric reference, and a real
Alertmanager running the shipped routes delivers to email, Slack and webhook
sinks while a critical mutes the warning of its family.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from alertmanager.render import RenderError as AlertmanagerRenderError
from alertmanager.render import main as render_alertmanager_main
from alertmanager.render import render as render_alertmanager
from prometheus.render import RenderError as PrometheusRenderError
from prometheus.render import render as render_prometheus
from prometheus.render import render_rules
from tests.harness import wait_until

ROOT = Path(__file__).resolve().parents[2]
RULES = sorted((ROOT / "rules").glob("*.rules.yml"))
RULE_TESTS = sorted((ROOT / "rules" / "tests").glob("*.test.yml"))
AM_CONFIG = ROOT / "alertmanager" / "alertmanager.yml"
ROUTE_CASES = yaml.safe_load((ROOT / "alertmanager" / "routes.test.yml").read_text())
RUNBOOKS = ROOT / "docs" / "runbooks"
RUNBOOK_BASE = "https://github.com/partnerwatch/partnerwatch/blob/main/docs/runbooks/"

SEVERITIES = {"critical", "warning", "info"}
TEAMS = {"oncall", "support", "security"}
# Alerts that fire without `for:`, and why.
NO_FOR = {
    "Watchdog": "always firing",
    "SecuritySuspiciousPatterns": "the security team hears at once; the 5m window smooths it",
    "SecurityBruteForce": "the security team hears at once; the 5m window smooths it",
}
# Alerts that have no quiet state to test.
ALWAYS_FIRING = {"Watchdog"}
# Series the rules read that no partnerwatch component exports.
EXTERNAL_METRICS = {"up", "alertmanager_notifications_failed_total"}
PROMQL_WORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
}


def run(*cmd: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)


def assert_ok(result: subprocess.CompletedProcess) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(result.args)} failed:\n{output}"
    return output


def all_rules() -> list[dict]:
    found = []
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                found.append({**rule, "_file": path.name})
    return found


ALERTS = [r for r in all_rules() if "alert" in r]
RECORDS = [r for r in all_rules() if "record" in r]
ALERT_NAMES = sorted({r["alert"] for r in ALERTS})


# ------------------------------------------------------------------ Prometheus


@pytest.fixture
def prometheus_layout(tmp_path) -> Path:
    """prometheus.yml with rules/ beside it, as the compose stack mounts them."""
    shutil.copy(ROOT / "prometheus" / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copytree(ROOT / "rules", tmp_path / "rules", ignore=shutil.ignore_patterns("tests"))
    return tmp_path / "prometheus.yml"


def test_promtool_accepts_prometheus_config_and_finds_every_rule_file(prometheus_layout):
    output = assert_ok(run("promtool", "check", "config", str(prometheus_layout)))
    assert f"SUCCESS: {len(RULES)} rule files found" in output


def test_prometheus_scrapes_the_stack_and_sends_to_alertmanager():
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    jobs = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    assert jobs == {
        "prometheus": ["prometheus:9090"],
        "alertmanager": ["alertmanager:9093"],
        "exporter": ["exporter:9701"],
        "ticketing": ["ticketing:8000"],
    }
    assert config["rule_files"] == ["rules/*.rules.yml"]
    [am] = config["alerting"]["alertmanagers"]
    assert am["static_configs"] == [{"targets": ["alertmanager:9093"]}]


def test_rendered_prometheus_config_is_valid_with_capped_for(tmp_path):
    rules_dir = render_rules(tmp_path / "rules", max_for="2s")
    capped = [
        r
        for p in rules_dir.glob("*.rules.yml")
        for g in yaml.safe_load(p.read_text())["groups"]
        for r in g["rules"]
        if "for" in r
    ]
    assert capped and {r["for"] for r in capped} == {"2s"}
    config = tmp_path / "prometheus.yml"
    config.write_text(
        render_prometheus(
            targets={"exporter": ["127.0.0.1:19701"], "ticketing": ["127.0.0.1:18000"]},
            alertmanagers=["127.0.0.1:19093"],
            rules_dir=rules_dir,
            scrape_interval="1s",
            evaluation_interval="1s",
        )
    )
    output = assert_ok(run("promtool", "check", "config", str(config)))
    assert f"SUCCESS: {len(RULES)} rule files found" in output
    rendered = yaml.safe_load(config.read_text())
    assert rendered["global"]["scrape_timeout"] == "1s"
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in rendered["scrape_configs"]}
    assert jobs["exporter"] == ["127.0.0.1:19701"] and jobs["prometheus"] == ["prometheus:9090"]
    with pytest.raises(PrometheusRenderError, match="job 'nope' does not exist"):
        render_prometheus(targets={"nope": ["127.0.0.1:1"]})


# ----------------------------------------------------------------------- rules


def test_promtool_accepts_every_rule_file():
    assert_ok(run("promtool", "check", "rules", "--lint=all", "--lint-fatal", *map(str, RULES)))


def test_promtool_rule_unit_tests_pass():
    output = assert_ok(run("promtool", "test", "rules", *map(str, RULE_TESTS)))
    assert output.count("SUCCESS") == len(RULE_TESTS)


@pytest.mark.parametrize("rule", ALERTS, ids=lambda r: f"{r['alert']}-{r['labels']['severity']}")
def test_alert_is_labelled_annotated_and_has_a_runbook(rule):
    name = rule["alert"]
    assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", name), "alert names are CamelCase"
    assert rule["labels"].get("severity") in SEVERITIES
    assert rule["labels"].get("team") in TEAMS
    annotations = rule.get("annotations", {})
    assert annotations.get("summary") and annotations.get("description")
    assert annotations.get("runbook_url") == f"{RUNBOOK_BASE}{name}.md"
    runbook = RUNBOOKS / f"{name}.md"
    assert runbook.is_file(), f"missing runbook {runbook}"
    text = runbook.read_text()
    assert text.startswith(f"# {name}\n")
    for section in ("## Meaning", "## Impact", "## Diagnosis", "## Action"):
        assert section in text, f"{runbook.name} lacks {section}"
    if name in NO_FOR:
        assert "for" not in rule
    else:
        assert rule.get("for"), f"{name} could flap: give it a `for:`"


def test_every_runbook_belongs_to_an_alert():
    assert sorted(p.stem for p in RUNBOOKS.glob("*.md")) == ALERT_NAMES


def test_alert_families_pair_a_critical_with_warnings():
    """`alertgroup` exists to let a critical mute warnings: each family has both."""
    families: dict[str, set[str]] = {}
    for rule in ALERTS:
        if "alertgroup" in rule["labels"]:
            families.setdefault(rule["labels"]["alertgroup"], set()).add(rule["labels"]["severity"])
    assert set(families) >= {
        "energy-pool",
        "platform-api",
        "platform-database",
        "transaction-failures",
    }
    for family, severities in families.items():
        assert severities == {"critical", "warning"}, family


def _unit_tests() -> list[dict]:
    return [t for path in RULE_TESTS for t in yaml.safe_load(path.read_text())["tests"]]


@pytest.mark.parametrize("name", ALERT_NAMES)
def test_alert_has_unit_tests_firing_and_quiet(name):
    cases = [
        case
        for test in _unit_tests()
        for case in test.get("alert_rule_test", [])
        if case["alertname"] == name
    ]
    firing = [case for case in cases if case.get("exp_alerts")]
    assert firing, f"no promtool test shows {name} firing"
    if name in ALWAYS_FIRING:
        assert len({case["eval_time"] for case in firing}) > 1 and len(firing) == len(cases)
    else:
        assert len(firing) < len(cases), f"no promtool test shows {name} quiet"


def test_every_recording_rule_has_a_unit_test():
    tested = {
        case["expr"].split("{")[0].strip()
        for test in _unit_tests()
        for case in test.get("promql_expr_test", [])
        if case.get("exp_samples")
    }
    assert {r["record"] for r in RECORDS} <= tested


def _metrics_reference() -> tuple[set[str], set[str]]:
    """(metric names, recording rule names) listed in docs/metrics.md."""
    metrics, records = set(), set()
    section = None
    for line in (ROOT / "docs" / "metrics.md").read_text().splitlines():
        if line.startswith("## "):
            section = line
        if not line.startswith("| `"):
            continue
        first_cell = line.split("|")[1]
        names = re.findall(r"`([^`]+)`", first_cell)
        if "Recording rules" in section:
            base = names[0]
            records.add(base)
            for suffix in names[1:]:
                records.add(base.rsplit(":", 1)[0] + suffix)
        else:
            metrics.update(names)
    return metrics, records


def test_recording_rules_are_exactly_the_documented_ones():
    _, documented = _metrics_reference()
    assert {r["record"] for r in RECORDS} == documented


def _series_read(expr: str) -> set[str]:
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        before = expr[match.start() - 1] if match.start() else " "
        after = expr[match.end() :].lstrip()
        if before.isdigit() or before == "." or after.startswith("("):
            continue  # a duration unit, a number, a function or an aggregation
        if match.group().lower() not in PROMQL_WORDS:
            names.add(match.group())
    return names


def test_rules_read_only_documented_series():
    metrics, records = _metrics_reference()
    known = set(EXTERNAL_METRICS) | records
    for name in metrics:
        known |= {name, f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    for rule in all_rules():
        unknown = _series_read(rule["expr"]) - known
        assert not unknown, (
            f"{rule.get('alert') or rule.get('record')} reads {unknown}, "
            "which docs/metrics.md does not list"
        )


# ---------------------------------------------------------------- Alertmanager


@pytest.fixture
def secrets_dir(tmp_path) -> Path:
    folder = tmp_path / "secrets"
    shutil.copytree(ROOT / "alertmanager" / "secrets.example", folder)
    return folder


def test_amtool_accepts_shipped_config():
    output = assert_ok(run("amtool", "check-config", str(AM_CONFIG)))
    assert "1 templates" in output and "10 receivers" in output


def test_shipped_config_keeps_secrets_in_files():
    text = AM_CONFIG.read_text()
    config = yaml.safe_load(text)
    assert config["global"]["smtp_auth_password_file"].startswith("/etc/alertmanager/secrets/")
    assert config["global"]["slack_api_url_file"].startswith("/etc/alertmanager/secrets/")
    for forbidden in (
        "smtp_auth_password:",
        "slack_api_url:",
        "api_url:",
        "credentials:",
        "hooks.slack.com",
    ):
        assert forbidden not in text
    secret_files = {Path(v).name for v in re.findall(r"_file: (\S+)", text)}
    assert secret_files == {
        p.name
        for p in (ROOT / "alertmanager" / "secrets.example").iterdir()
        if p.name != "README.md"
    }


def test_rendered_config_is_valid_and_changes_only_what_is_asked(tmp_path, secrets_dir):
    rendered = tmp_path / "alertmanager.yml"
    rendered.write_text(
        render_alertmanager(
            secrets_dir=secrets_dir,
            smtp_smarthost="127.0.0.1:2525",
            smtp_require_tls=False,
            webhook_urls={"oncall-critical": "http://127.0.0.1:1/oncall"},
            email_to={"support": "desk@example.org"},
            timings={"group_wait": "1s", "repeat_interval": "1h"},
        )
    )
    assert_ok(run("amtool", "check-config", str(rendered)))
    shipped, config = yaml.safe_load(AM_CONFIG.read_text()), yaml.safe_load(rendered.read_text())
    assert config["global"]["smtp_auth_password_file"] == str(secrets_dir / "smtp_password")
    assert config["global"]["smtp_smarthost"] == "127.0.0.1:2525"
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["oncall-critical"]["webhook_configs"][0]["url"] == "http://127.0.0.1:1/oncall"
    assert receivers["oncall-critical"]["webhook_configs"][0]["http_config"]["authorization"][
        "credentials_file"
    ] == str(secrets_dir / "oncall_webhook_token")
    assert receivers["support"]["email_configs"][0]["to"] == "desk@example.org"
    assert config["route"]["group_wait"] == "1s" and config["route"]["repeat_interval"] == "1h"
    routes = {r.get("receiver", "events"): r for r in config["route"]["routes"]}
    assert routes["heartbeat"]["repeat_interval"] == "1h"  # set there: replaced
    assert "repeat_interval" not in routes["oncall-critical"]  # not set there: inherits
    assert config["inhibit_rules"] == shipped["inhibit_rules"]
    assert _route_receivers(config["route"], "oncall") == _route_receivers(
        shipped["route"], "oncall"
    )
    # Receivers that share the shipped value follow the one named.
    assert (
        receivers["oncall-critical-events"]["webhook_configs"][0]["url"]
        == "http://127.0.0.1:1/oncall"
    )
    assert receivers["support-events"]["email_configs"][0]["to"] == "desk@example.org"
    assert receivers["security"]["email_configs"][0]["to"] == "security@partnerwatch.example"
    with pytest.raises(AlertmanagerRenderError, match="receiver 'nope' does not exist"):
        render_alertmanager(webhook_urls={"nope": "http://x"})
    with pytest.raises(AlertmanagerRenderError, match="has no email_configs"):
        render_alertmanager(email_to={"heartbeat": "a@example.org"})


def test_render_command_reads_the_environment(tmp_path, secrets_dir, monkeypatch):
    monkeypatch.setenv("ALERTMANAGER_SECRETS_DIR", str(secrets_dir))
    monkeypatch.setenv("ALERTMANAGER_WEBHOOK_HEARTBEAT", "http://127.0.0.1:1/beat")
    out = tmp_path / "am.yml"
    assert (
        render_alertmanager_main(
            [
                "--out",
                str(out),
                "--smtp-smarthost",
                "mail:25",
                "--webhook",
                "oncall-critical=http://127.0.0.1:1/page",
            ]
        )
        == 0
    )
    assert_ok(run("amtool", "check-config", str(out)))
    receivers = {r["name"]: r for r in yaml.safe_load(out.read_text())["receivers"]}
    assert receivers["heartbeat"]["webhook_configs"][0]["url"] == "http://127.0.0.1:1/beat"
    assert receivers["oncall-critical"]["webhook_configs"][0]["url"] == "http://127.0.0.1:1/page"
    assert yaml.safe_load(out.read_text())["global"]["slack_api_url_file"] == str(
        secrets_dir / "slack_api_url"
    )


def test_render_adds_the_partner_receiver_of_each_ticketing_instance(
    tmp_path, secrets_dir, monkeypatch
):
    monkeypatch.setenv(
        "ALERTMANAGER_EXTRA_WEBHOOKS_PARTNER_WEBHOOKS",
        "http://ticketing-b:8000/internal/alertmanager/partner-alerts, ",
    )
    out = tmp_path / "am.yml"
    argv = ["--out", str(out), "--secrets-dir", str(secrets_dir)]
    extra = "partner-webhooks=http://ticketing-c:8000/internal/alertmanager/partner-alerts"
    assert render_alertmanager_main([*argv, "--extra-webhook", extra]) == 0
    assert_ok(run("amtool", "check-config", str(out)))
    receivers = {r["name"]: r for r in yaml.safe_load(out.read_text())["receivers"]}
    configs = receivers["partner-webhooks"]["webhook_configs"]
    assert [c["url"].split("/")[2] for c in configs] == [
        "ticketing:8000",
        "ticketing-b:8000",
        "ticketing-c:8000",
    ]
    token = str(secrets_dir / "partner_webhooks_token")
    assert {c["http_config"]["authorization"]["credentials_file"] for c in configs} == {token}
    assert all(c["send_resolved"] for c in configs)
    with pytest.raises(AlertmanagerRenderError, match="has no webhook_configs"):
        render_alertmanager(extra_webhook_urls={"support": ["http://x"]})


@pytest.mark.parametrize("case", ROUTE_CASES, ids=lambda c: c["name"])
def test_route(case):
    labels = [f"{k}={v}" for k, v in case["labels"].items()]
    result = run(
        "amtool",
        "config",
        "routes",
        "test",
        f"--config.file={AM_CONFIG}",
        f"--verify.receivers={','.join(case['receivers'])}",
        *labels,
    )
    assert_ok(result)
    assert result.stdout.strip() == ",".join(case["receivers"])


def _route_receivers(route: dict, inherited: str) -> list[str]:
    """The receiver of ``route`` and of every route under it (inherited when unset)."""
    receiver = route.get("receiver", inherited)
    found = [receiver]
    for child in route.get("routes", []):
        found += _route_receivers(child, receiver)
    return found


def test_route_cases_reach_every_route_and_receiver():
    config = yaml.safe_load(AM_CONFIG.read_text())
    routes = _route_receivers(config["route"], config["route"]["receiver"])
    assert set(routes) == {r["name"] for r in config["receivers"]}
    reached = {r for case in ROUTE_CASES for r in case["receivers"]}
    assert reached == set(routes)
    assert len(ROUTE_CASES) >= len(routes)


def _outbox_alertnames() -> dict[str, str]:
    """alertname -> team of the notifications ticketing posts through its outbox."""
    from ticketing.security.events import ALERT_NAMES

    names = {name: "security" for name in ALERT_NAMES.values()}
    source = (ROOT / "ticketing" / "outbox" / "notifications.py").read_text()
    names.update({name: "support" for name in re.findall(r'"alertname": "(\w+)"', source)})
    return names


def test_partner_alerts_are_grouped_and_cooled_down_per_partner():
    """The partner route groups by partner only and repeats every 5m: the cooldown."""
    config = yaml.safe_load(AM_CONFIG.read_text())
    [route] = [r for r in config["route"]["routes"] if r.get("receiver") == "partner-webhooks"]
    assert route["group_by"] == ["partner"] and route["repeat_interval"] == "5m"
    assert route["continue"] is True
    [receiver] = [r for r in config["receivers"] if r["name"] == "partner-webhooks"]
    [hook] = receiver["webhook_configs"]
    assert hook["send_resolved"] is True
    assert hook["url"].endswith("/internal/alertmanager/partner-alerts")
    assert hook["http_config"]["authorization"]["credentials_file"].endswith(
        "/partner_webhooks_token"
    )
    partner_rules = [r for r in ALERTS if r["labels"].get("scope") == "partner"]
    assert {r["alert"] for r in partner_rules} >= {
        "PartnerTransactionFailureRatioHigh",
        "PartnerTransactionsStalled",
        "PartnerEnergyDrawHigh",
    }
    for rule in partner_rules:
        assert "by (partner)" in rule["expr"] or "partner:" in rule["expr"], rule["alert"]


def test_outbox_notifications_take_the_event_routes():
    """Ticketing's event alerts reach their team once, without a resolved notice."""
    names = _outbox_alertnames()
    assert {"SupportTicketCreated", "SupportPartnerReply"} <= set(names)
    receivers = {r["name"]: r for r in yaml.safe_load(AM_CONFIG.read_text())["receivers"]}
    for name, team in names.items():
        for severity, expected in (
            ("warning", [f"{team}-events"]),
            ("critical", ["oncall-critical-events", f"{team}-events"]),
        ):
            result = run(
                "amtool",
                "config",
                "routes",
                "test",
                f"--config.file={AM_CONFIG}",
                f"alertname={name}",
                f"team={team}",
                f"severity={severity}",
            )
            assert result.stdout.strip() == ",".join(expected), (name, severity)
            for receiver in expected:
                configs = [
                    c
                    for kind in ("email_configs", "slack_configs", "webhook_configs")
                    for c in receivers[receiver].get(kind, [])
                ]
                assert configs and not any(c["send_resolved"] for c in configs)


def test_every_rule_alert_routes_to_its_team():
    """Each rule's labels, through amtool: criticals page, the rest reach their team."""
    for rule in ALERTS:
        labels = {"alertname": rule["alert"], **rule["labels"]}
        severity, team = labels["severity"], labels["team"]
        partner = ["partner-webhooks"] if labels.get("scope") == "partner" else []
        partner = (["status-incidents"] if labels.get("component") else []) + partner
        if partner:
            labels["partner"] = "7"  # from the series, as the rules' expressions keep it
        if rule["alert"] == "Watchdog":
            expected = ["heartbeat"]
        elif severity == "critical":
            expected = partner + ["oncall-critical"] + ([team] if team != "oncall" else [])
        else:
            expected = partner + [team]
        result = run(
            "amtool",
            "config",
            "routes",
            "test",
            f"--config.file={AM_CONFIG}",
            *[f"{k}={v}" for k, v in labels.items()],
        )
        assert result.stdout.strip() == ",".join(expected), rule["alert"]


# ------------------------------------------ a real Alertmanager on the shipped routes


def _alert(name: str, severity: str, ends_in: float = 300, **labels: str) -> dict:
    rule = next(
        (r for r in ALERTS if r["alert"] == name and r["labels"]["severity"] == severity), None
    )
    base = dict(rule["labels"]) if rule else {"severity": severity, "team": "oncall"}
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": name, **base, **labels},
        "annotations": {
            "summary": f"{name} {labels}",
            "description": f"{name} test",
            "runbook_url": f"{RUNBOOK_BASE}{name}.md",
        },
        "startsAt": (now - timedelta(minutes=2)).isoformat(),
        "endsAt": (now + timedelta(seconds=ends_in)).isoformat(),
    }


def _slack_posts(sink, channel: str) -> list[dict]:
    return [r.json for r in sink.received("/slack") if r.json.get("channel") == channel]


def _sink_config(tmp_path: Path, secrets_dir: Path, smtp_sink, http_sink) -> Path:
    """The shipped config pointed at the sinks, with 1s group_wait / group_interval."""
    (secrets_dir / "slack_api_url").write_text(f"{http_sink.url}/slack")
    (secrets_dir / "oncall_webhook_token").write_text("s3cret-token")
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        render_alertmanager(
            secrets_dir=secrets_dir,
            smtp_smarthost=smtp_sink.address,
            webhook_urls={
                "oncall-critical": f"{http_sink.url}/oncall",
                "heartbeat": f"{http_sink.url}/heartbeat",
            },
            timings={"group_wait": "1s", "group_interval": "1s"},
        )
    )
    return config


def test_real_alertmanager_delivers_and_critical_mutes_its_warning(
    tmp_path, secrets_dir, alertmanager_factory, smtp_sink, http_sink
):
    config = _sink_config(tmp_path, secrets_dir, smtp_sink, http_sink)
    am = alertmanager_factory(config)

    # The critical is known before its warnings arrive, as when Prometheus has
    # been sending it for a while: Alertmanager's inhibitor learns of source
    # alerts asynchronously, so alerts posted in one batch race a 1s group_wait.
    # Its delivery below shows it has been processed.
    am.post_alerts(
        [_alert("EnergyPoolCritical", "critical", pool="main"), _alert("Watchdog", "info")]
    )
    # The critical: one email, one Slack post on the on-call channel, one webhook.
    [mail] = smtp_sink.wait_for(1, timeout=30)
    am.post_alerts(
        [
            _alert("EnergyPoolLow", "warning", pool="main"),  # muted by the critical
            _alert("EnergyPoolLow", "warning", pool="reserve"),  # no critical for it
        ]
    )
    assert mail.rcpt_tos == ["oncall@partnerwatch.example"]
    assert "[FIRING:1] EnergyPoolCritical (critical)" in mail.subject
    assert "pool=main" in mail.text() and f"{RUNBOOK_BASE}EnergyPoolCritical.md" in mail.text()
    [hook] = http_sink.wait_for(1, path="/oncall", timeout=30)
    assert hook.headers.get("Authorization") == "Bearer s3cret-token"
    assert [a["labels"]["alertname"] for a in hook.json["alerts"]] == ["EnergyPoolCritical"]
    critical_posts = wait_until(
        lambda: _slack_posts(http_sink, "#partnerwatch-oncall"),
        timeout=30,
        message="critical Slack post",
    )
    assert critical_posts[0]["attachments"][0]["color"] == "danger"
    assert "EnergyPoolCritical" in critical_posts[0]["attachments"][0]["title"]
    http_sink.wait_for(1, path="/heartbeat", timeout=30)

    # The warnings' group carries only the pool without a critical.
    [warning_post] = wait_until(
        lambda: _slack_posts(http_sink, "#partnerwatch-alerts"),
        timeout=30,
        message="warning Slack post",
    )
    text = warning_post["attachments"][0]["text"]
    assert "pool=reserve" in text and "pool=main" not in text
    [muted] = am.alerts(alertname="EnergyPoolLow", pool="main")
    assert muted["status"]["state"] == "suppressed" and muted["status"]["inhibitedBy"]

    # Nothing more arrives over several group intervals: each group was sent once.
    time.sleep(3)
    assert len(smtp_sink.messages) == 1
    assert len(http_sink.received("/oncall")) == 1
    assert len(_slack_posts(http_sink, "#partnerwatch-oncall")) == 1
    assert len(_slack_posts(http_sink, "#partnerwatch-alerts")) == 1

    # The critical resolves: resolved notices go out, and the warning it muted
    # is delivered now.
    am.post_alerts(
        [
            _alert("EnergyPoolCritical", "critical", ends_in=-1, pool="main"),
            _alert("EnergyPoolLow", "warning", pool="main"),
            _alert("EnergyPoolLow", "warning", pool="reserve"),
        ]
    )
    [_, resolved_mail] = smtp_sink.wait_for(2, timeout=30)
    assert resolved_mail.subject.startswith("[RESOLVED] EnergyPoolCritical")
    [_, resolved_hook] = http_sink.wait_for(2, path="/oncall", timeout=30)
    assert resolved_hook.json["status"] == "resolved"
    unmuted = wait_until(
        lambda: [
            p
            for p in _slack_posts(http_sink, "#partnerwatch-alerts")
            if "pool=main" in p["attachments"][0]["text"]
        ],
        timeout=30,
        message="the warning once its critical resolved",
    )
    assert "[FIRING:2] EnergyPoolLow" in unmuted[0]["attachments"][0]["title"]


def test_real_alertmanager_tells_an_outbox_event_once(
    tmp_path, secrets_dir, alertmanager_factory, smtp_sink, http_sink
):
    am = alertmanager_factory(_sink_config(tmp_path, secrets_dir, smtp_sink, http_sink))
    now = datetime.now(UTC)
    am.post_alerts(
        [
            {
                "labels": {
                    "alertname": "SupportTicketCreated",
                    "severity": "warning",
                    "team": "support",
                    "ticket": "42",
                    "partner": "7",
                    "priority": "high",
                    "category": "api",
                },
                "annotations": {"summary": "New high ticket #42: API returns 502"},
                "startsAt": now.isoformat(),
                "endsAt": (now + timedelta(seconds=2)).isoformat(),
            }
        ]
    )

    [mail] = smtp_sink.wait_for(1, timeout=30)
    assert mail.rcpt_tos == ["support@partnerwatch.example"]
    assert "[FIRING:1] SupportTicketCreated (warning) partner 7" in mail.subject
    assert "New high ticket #42" in mail.text()
    [post] = http_sink.wait_for(1, path="/slack", timeout=30)
    assert post.json["channel"] == "#partnerwatch-support"

    # The alert expires; several group intervals later no "resolved" has followed.
    wait_until(
        lambda: not am.alerts(alertname="SupportTicketCreated"),
        timeout=30,
        message="the event's alert to expire",
    )
    time.sleep(3)
    assert len(smtp_sink.messages) == 1 and len(http_sink.received("/slack")) == 1
