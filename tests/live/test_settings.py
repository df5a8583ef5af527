"""The ``live`` section: defaults, environment fallbacks, one line per problem."""

from __future__ import annotations

import re

import pytest

from tests.harness.app import create_test_app
from ticketing.config import ConfigError, load_sections
from ticketing.live.settings import LiveConfigError, load_settings
from ticketing.live.snapshot import QUERIES


def test_the_shipped_section_is_valid_and_complete():
    settings = load_settings(load_sections()["live"], set(QUERIES), environ={})
    assert settings.interval == 5.0 and settings.query_timeout < settings.interval
    assert settings.prometheus_url == "http://127.0.0.1:9090"
    assert "Watchdog" in settings.hidden_alerts
    assert "PlatformApiDown" in settings.partner_alerts
    assert not settings.partner_alerts & {"SecurityBruteForce", "SupportFirstResponseOverdue"}


def test_urls_come_from_the_environment_when_not_set():
    settings = load_settings(
        {},
        set(QUERIES),
        environ={
            "PROMETHEUS_URL": "http://prometheus:9090/",
            "ALERTMANAGER_URL": "http://am-0:9093, http://am-1:9093",
        },
    )
    assert settings.prometheus_url == "http://prometheus:9090"
    assert settings.alertmanager_urls == ("http://am-0:9093", "http://am-1:9093")
    explicit = load_settings(
        {"prometheus_url": "http://other:9090"},
        set(QUERIES),
        environ={"PROMETHEUS_URL": "http://prometheus:9090"},
    )
    assert explicit.prometheus_url == "http://other:9090"


def test_every_problem_is_reported_with_its_location():
    with pytest.raises(LiveConfigError) as error:
        load_settings(
            {
                "interval": "soon",
                "ping_interval": 0,
                "max_clients": "many",
                "query_offset": -1,
                "alertmanager_url": ["ftp://am"],
                "colour": "red",
                "partner_alerts": "PlatformApiDown",
                "queries": {"api_up": "", "bogus": "up"},
            },
            set(QUERIES),
            environ={},
        )
    # In the order of the settings, unknown keys last; every value that is wrong is quoted.
    assert error.value.problems == [
        "live.alertmanager_url: must be an http(s) URL, got 'ftp://am'",
        "live.interval: must be a duration such as 15s, 500ms or 2m (got 'soon')",
        "live.ping_interval: must be > 0 (got 0)",
        "live.query_offset: must be >= 0 (got -1)",
        "live.max_clients: must be an integer >= 1 (got 'many')",
        "live.partner_alerts: must be a list of alert names",
        "live.queries.api_up: must be a PromQL expression",
        "live.queries.bogus: unknown query (known: " + ", ".join(sorted(QUERIES)) + ")",
        "live.colour: unknown setting",
    ]


def test_a_query_timeout_as_long_as_the_interval_is_refused():
    with pytest.raises(LiveConfigError) as error:
        load_settings({"interval": "2s", "query_timeout": "2s"}, set(QUERIES), environ={})
    assert error.value.problems == [
        "live.query_timeout: must be < live.interval, or snapshots fall behind while a source hangs"
    ]


def test_the_app_refuses_to_start_with_an_invalid_section(tmp_path):
    with pytest.raises(ConfigError) as error:
        create_test_app(
            {
                "TESTING": True,
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/t.db",
                "TICKETING": {"live": {"send_timeout": "never"}},
            },
            migrate=False,
        )
    assert "live.send_timeout: must be a duration" in str(error.value)


def test_a_disabled_feed_adds_no_route(tmp_path):
    app = create_test_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/t.db",
            "TICKETING": {"live": {"enabled": False}},
        },
        migrate=False,
    )
    assert app.extensions["live"] is None
    assert "/ws/monitoring" not in {rule.rule for rule in app.url_map.iter_rules()}


def test_the_feed_queries_only_names_of_the_metric_reference(root):
    documented = set()
    for line in (root / "docs" / "metrics.md").read_text().splitlines():
        names = re.findall(r"`(:?[a-z_][a-z0-9_:]*)`", line.split("|")[1] if "|" in line else "")
        for name in names:  # `level:metric:p50_5m`, `:p95_5m` lists two recording rules
            documented.add(names[0].rsplit(":", 1)[0] + name if name.startswith(":") else name)
    for name, expr in QUERIES.items():
        used = re.findall(r"\b([a-z]+:[a-z0-9_:]+|(?:platform|support)_[a-z0-9_]+)\b", expr)
        assert used and set(used) <= documented, (name, set(used) - documented)
