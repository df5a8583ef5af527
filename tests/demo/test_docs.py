"""docs/demo.md against the code and configuration it describes."""

from __future__ import annotations

import math
import re

import yaml

from demo.scenarios import ALL_SCENARIOS
from demo.stack import Stack
from sharedconfig import parse_duration
from ticketing.desk.choices import PRIORITIES
from ticketing.outbox.notifications import severity_for_priority


def heartbeat_period(route: dict, root: dict) -> float:
    """Seconds between two heartbeats: Alertmanager re-sends a firing group on a tick of
    its group_interval once repeat_interval has passed since the last notification, which
    went out just after the tick before; so a repeat_interval that is a multiple of the
    group_interval waits one tick more."""
    group = parse_duration(route.get("group_interval", root["group_interval"]))
    repeat = parse_duration(route.get("repeat_interval", root["repeat_interval"]))
    ticks = math.floor(repeat / group) + 1 if repeat % group == 0 else math.ceil(repeat / group)
    return ticks * group


def test_the_heartbeat_period_is_the_one_documented(root):
    config = yaml.safe_load((root / "alertmanager" / "alertmanager.yml").read_text())
    [route] = [r for r in config["route"]["routes"] if r.get("receiver") == "heartbeat"]
    minutes = heartbeat_period(route, config["route"]) / 60
    assert minutes == 2
    docs = (root / "docs" / "demo.md").read_text()
    paragraph = docs[docs.index("Alertmanager's heartbeat") :].split("\n\n")[0]
    assert f"`HEARTBEAT` line every {minutes:g} minutes" in " ".join(paragraph.split())
    banner = "\n".join(_stub_stack(root).banner_lines())
    assert f"every {minutes:g} minutes" in banner


def _stub_stack(root) -> Stack:
    stack = Stack(root / "run")
    stack.urls = {
        name: f"http://127.0.0.1:{port}"
        for name, port in {
            "ticketing": 8000,
            "exporter": 9701,
            "prometheus": 9090,
            "alertmanager": 9093,
            "platform": 8081,
            "sinks": 8025,
            "redis": 6379,
            "smtp": 1025,
        }.items()
    }
    stack.urls["console"] = "http://127.0.0.1:8000/console/"
    return stack


def test_every_scenario_is_documented_with_what_it_fires(root):
    docs = (root / "docs" / "demo.md").read_text()
    rows = {
        m.group(1): m.group(0)
        for m in re.finditer(r"^\| `([a-z-]+)` \|.*$", docs, flags=re.MULTILINE)
    }
    assert set(ALL_SCENARIOS) <= set(rows)
    for name in ALL_SCENARIOS:
        if name != "recover":
            # what fires in Prometheus, and what reaches the sinks: four columns
            assert rows[name].count(" | ") >= 3, rows[name]
    # drain-energy holds the pool at its reserve: no transaction fails (demo/platform.py).
    assert "no transaction fails" in rows["drain-energy"]
    # The attack's brute force locks key checks from 127.0.0.1: the console's sign-in too.
    assert "signing in to the console from 127.0.0.1 is refused" in rows["attack-tickets"]


def test_every_new_ticket_reaches_support_as_documented(root):
    """Every priority is notified (ticketing/outbox/notifications.py): none is dropped."""
    severities = {p: severity_for_priority(p) for p in PRIORITIES}
    assert severities == {
        "low": "info",
        "medium": "info",
        "high": "warning",
        "critical": "critical",
    }
    docs = " ".join((root / "docs" / "demo.md").read_text().split())
    assert "Every new ticket, whatever its priority, reaches the support team" in docs
    assert "`info` for low and medium, `warning` for high, `critical` for critical" in docs
