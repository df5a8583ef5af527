"""An HA pair of Prometheus and a cluster of two Alertmanagers notify once, through faults.

Both replicas evaluate the same rules over the same targets and send every
alert to both Alertmanagers; the replica label is dropped from what they send,
so each Alertmanager holds one alert for the pair, and the cluster's gossiped
notification log lets only one of them notify a group. Killing either
Alertmanager or either Prometheus loses nothing and doubles nothing.
(The stack: tests/ha/conftest.py.)
"""

from __future__ import annotations

import time

import pytest

from tests.harness.monitoring import count, deliveries, wait_for_deliveries

pytestmark = pytest.mark.slow

ONCALL_EMAIL = "email oncall@partnerwatch.example"
ONCALL_SLACK = "slack #partnerwatch-oncall"
ALERTS_SLACK = "slack #partnerwatch-alerts"
ENERGY_CHANNELS = (ONCALL_EMAIL, ONCALL_SLACK, "webhook")
#: Long enough for a second notification to arrive if one were coming: a
#: group_interval (12 s) and a peer_timeout (3 s) beyond the first, and more.
QUIET = 18.0


def assert_once(stack, *expected: tuple[tuple[str, ...], str, str]) -> None:
    """After a quiet spell, each (channels, status, alertname) arrived exactly once per channel."""
    time.sleep(QUIET)
    got = {
        (channel, status, alertname): count(stack.smtp, stack.http, channel, status, alertname)
        for channels, status, alertname in expected
        for channel in channels
    }
    assert got == {key: 1 for key in got}, (
        got,
        sorted({(d.channel, d.status, d.alertname) for d in deliveries(stack.smtp, stack.http)}),
    )


def firing_in(prom, alertname: str) -> bool:
    return any(
        a["labels"]["alertname"] == alertname and a["state"] == "firing" for a in prom.alerts()
    )


def test_killing_one_prometheus_replica_loses_no_alert(ha_monitoring):
    stack = ha_monitoring
    stack.reset()
    a, b = stack.prometheus["a"], stack.prometheus["b"]

    # Replica a dies before anything happens: replica b alone fires the alert.
    a.kill()
    stack.platform.set_available(100)
    wait_for_deliveries(
        stack.smtp, stack.http, {(c, "firing", "EnergyPoolCritical") for c in ENERGY_CHANNELS}
    )
    assert firing_in(b, "EnergyPoolCritical")

    # Replica a comes back while the alert fires, and b dies: a keeps it firing
    # (no "resolved" while the pool stays low) and resolves it when it recovers.
    a.start()
    a.wait_for('ALERTS{alertname="EnergyPoolCritical", alertstate="firing"}', timeout=60)
    b.kill()
    time.sleep(QUIET)
    assert count(stack.smtp, stack.http, ONCALL_EMAIL, "resolved", "EnergyPoolCritical") == 0
    stack.platform.set_available(800)
    wait_for_deliveries(
        stack.smtp, stack.http, {(c, "resolved", "EnergyPoolCritical") for c in ENERGY_CHANNELS}
    )
    assert_once(
        stack,
        (ENERGY_CHANNELS, "firing", "EnergyPoolCritical"),
        (ENERGY_CHANNELS, "resolved", "EnergyPoolCritical"),
    )
    stack.reset()


def test_both_replicas_fire_and_the_cluster_notifies_once_even_when_one_alertmanager_dies(
    ha_monitoring,
):
    stack = ha_monitoring
    stack.reset()
    am1, am2 = stack.alertmanagers
    for am in (am1, am2):
        assert am.cluster_status()["status"] == "ready"

    # The energy pool drops under 20 %: both replicas fire, on-call hears it once per channel.
    stack.platform.set_available(100)
    wait_for_deliveries(
        stack.smtp, stack.http, {(c, "firing", "EnergyPoolCritical") for c in ENERGY_CHANNELS}
    )
    # The replicas evaluate at their own moments: the second may reach "firing" a
    # rule interval after the first one's notification went out.
    for prom in stack.prometheus.values():
        prom.wait_for('ALERTS{alertname="EnergyPoolCritical", alertstate="firing"}', timeout=60)
    # Each Alertmanager holds one alert for the pair, without the replica label.
    for am in (am1, am2):
        [alert] = am.alerts(alertname="EnergyPoolCritical")
        assert "replica" not in alert["labels"], alert["labels"]

    # One Alertmanager dies mid-run; a new group and a resolution still arrive once.
    # (Not in the instant it notifies: the cluster gossips each notification a
    # moment after it is sent, and a member killed in between is repeated by
    # its peer, which is Alertmanager's at-least-once; docs/deployment.md.)
    time.sleep(2)
    am1.kill()
    stack.api.delay = 1.3  # over PlatformApiSlow's 1 s threshold
    wait_for_deliveries(stack.smtp, stack.http, {(ALERTS_SLACK, "firing", "PlatformApiSlow")})
    stack.platform.set_available(800)
    wait_for_deliveries(
        stack.smtp, stack.http, {(c, "resolved", "EnergyPoolCritical") for c in ENERGY_CHANNELS}
    )
    assert_once(
        stack,
        (ENERGY_CHANNELS, "firing", "EnergyPoolCritical"),
        ((ALERTS_SLACK,), "firing", "PlatformApiSlow"),
        (ENERGY_CHANNELS, "resolved", "EnergyPoolCritical"),
    )
    assert not [d for d in deliveries(stack.smtp, stack.http) if d.alertname == "EnergyPoolLow"]
    stack.reset()
