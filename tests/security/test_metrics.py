"""Every counter series exists at 0 from the start, so that increase() sees the first event.

The multiprocess case (gunicorn workers writing to PROMETHEUS_MULTIPROC_DIR)
is checked in test_gunicorn.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.security import DEFAULT_ACTIONS, expected_series
from ticketing.security import EventType, record_event


def test_a_fresh_process_exposes_every_series_at_zero(root, tmp_path):
    """Before any request: every type x severity, every configured action, storage errors."""
    script = (
        "from prometheus_client import generate_latest\n"
        "from tests.harness.security_app import build_app\n"
        f"build_app('sqlite:///{tmp_path / 'fresh.db'}', "
        "ratelimits={'limits': {'refund': '1/minute'}})\n"
        "print(generate_latest().decode())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(out)
        for s in family.samples
        if s.name
        in ("security_events_total", "ratelimit_rejections_total", "ratelimit_backend_errors_total")
    }
    expected = expected_series(DEFAULT_ACTIONS + ("refund",))
    assert set(found) == expected
    assert set(found.values()) == {0.0}


def test_an_app_set_up_later_adds_its_own_actions(make_app):
    make_app(ratelimits={"limits": {"chargeback": "2/hour"}})
    for name, labels in expected_series(DEFAULT_ACTIONS + ("chargeback",)):
        assert REGISTRY.get_sample_value(name, dict(labels)) is not None, (name, labels)
    assert REGISTRY.get_sample_value("ratelimit_rejections_total", {"action": "chargeback"}) == 0.0


def test_severities_are_the_fixed_set(app):
    with app.app_context(), pytest.raises(ValueError, match="severity must be one of"):
        record_event(EventType.FAILED_AUTH, severity="high")
