"""The notification sinks print what they receive and record it, one JSON object per line."""

from __future__ import annotations

import json
import smtplib
import sys
from email.message import EmailMessage

import pytest
import requests

from tests.harness import free_port, http_ready, wait_until

ALERTMANAGER_WEBHOOK = {
    "version": "4",
    "receiver": "oncall-critical",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "EnergyPoolCritical", "pool": "main", "severity": "critical"},
            "annotations": {"summary": "Energy pool main is at 3%"},
        }
    ],
}


@pytest.fixture
def sinks(tmp_path, processes, root):
    smtp, http = free_port(), free_port()
    record = tmp_path / "notifications.jsonl"
    proc = processes.start(
        [
            sys.executable,
            "-m",
            "demo.sinks",
            "--smtp",
            f"127.0.0.1:{smtp}",
            "--http",
            f"127.0.0.1:{http}",
            "--record",
            str(record),
        ],
        tmp_path,
        ready=http_ready(f"http://127.0.0.1:{http}/healthz"),
        name="sinks",
        env={"PYTHONPATH": str(root), "PYTHONUNBUFFERED": "1"},
    )
    return proc, smtp, f"http://127.0.0.1:{http}", record


def test_sinks_print_and_record_each_channel(sinks):
    proc, smtp_port, url, record = sinks
    requests.post(
        f"{url}/webhook/oncall-critical", json=ALERTMANAGER_WEBHOOK, timeout=5
    ).raise_for_status()
    requests.post(
        f"{url}/slack",
        timeout=5,
        json={
            "channel": "#partnerwatch-oncall",
            "attachments": [
                {
                    "title": "[FIRING:1] EnergyPoolCritical (critical)",
                    "text": "Energy pool main is at 3%",
                }
            ],
        },
    ).raise_for_status()
    mail = EmailMessage()
    mail["Subject"], mail["From"], mail["To"] = (
        "[FIRING:1] EnergyPoolCritical (critical)",
        "alerts@example.org",
        "oncall@example.org",
    )
    mail.set_content("<p>Energy pool <b>main</b> is at 3%</p>", subtype="html")
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
        client.send_message(mail)

    items = wait_until(
        lambda: (
            record.exists()
            and len(record.read_text().splitlines()) == 3
            and [json.loads(line) for line in record.read_text().splitlines()]
        ),
        message="three records",
    )
    by_channel = {item["channel"]: item for item in items}
    assert set(by_channel) == {"webhook", "slack", "email"}
    for item in items:
        assert item["alertnames"] == ["EnergyPoolCritical"], item
    assert by_channel["webhook"]["status"] == "firing"
    assert by_channel["webhook"]["receiver"] == "oncall-critical"
    assert by_channel["email"]["to"] == ["oncall@example.org"]
    assert by_channel["email"]["text"] == "Energy pool main is at 3%"
    assert requests.get(f"{url}/notifications", timeout=5).json() == items

    printed = wait_until(
        lambda: proc.log().count("EnergyPoolCritical") >= 3 and proc.log(),
        message="printed notifications",
    )
    assert "WEBHOOK /webhook/oncall-critical" in printed
    assert "SLACK #partnerwatch-oncall" in printed
    assert "EMAIL to oncall@example.org" in printed
    assert 'EnergyPoolCritical{pool="main",severity="critical"}' in printed


def test_sinks_take_any_body(sinks):
    proc, _, url, record = sinks
    requests.post(f"{url}/webhook/partner", data=b"\xff not json", timeout=5).raise_for_status()
    requests.post(f"{url}/slack", json=["not", "an", "object"], timeout=5).raise_for_status()
    heartbeat = {
        **ALERTMANAGER_WEBHOOK,
        "receiver": "heartbeat",
        "alerts": [{"status": "firing", "labels": {"alertname": "Watchdog"}}],
    }
    requests.post(f"{url}/webhook/heartbeat", json=heartbeat, timeout=5).raise_for_status()
    wait_until(
        lambda: record.exists() and len(record.read_text().splitlines()) == 3,
        message="three records",
    )
    wait_until(lambda: "HEARTBEAT /webhook/heartbeat" in proc.log(), message="heartbeat line")
