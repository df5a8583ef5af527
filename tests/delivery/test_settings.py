"""The ``outbox`` section: defaults, durations, the environment and located errors."""

import pytest

from ticketing.config import ConfigError
from ticketing.outbox.settings import DEFAULT_ALERTMANAGER_URL, OutboxConfigError, load_settings


def test_defaults_take_alertmanager_url_from_environment():
    settings = load_settings({}, environ={"ALERTMANAGER_URL": "http://am.internal:9093/"})
    assert settings.alertmanager_urls == ("http://am.internal:9093",)
    assert load_settings(None, environ={}).alertmanager_urls == (DEFAULT_ALERTMANAGER_URL,)
    # The file wins over the environment.
    settings = load_settings(
        {"alertmanager_url": "http://a:9093"}, environ={"ALERTMANAGER_URL": "http://b:9093"}
    )
    assert settings.alertmanager_urls == ("http://a:9093",)


def test_shipped_section_is_valid():
    from ticketing.config import load_sections

    settings = load_settings(load_sections()["outbox"], environ={})
    assert settings.worker is True
    assert settings.alert_ttl > settings.claim_timeout


def test_durations_and_lists():
    settings = load_settings(
        {
            "alertmanager_url": ["http://a:9093", "http://b:9093"],
            "poll_interval": "500ms",
            "max_backoff": "5m",
            "alert_ttl": "1h",
            "request_timeout": 2,
        },
        environ={},
    )
    assert settings.alertmanager_urls == ("http://a:9093", "http://b:9093")
    assert (settings.poll_interval, settings.max_backoff, settings.alert_ttl) == (0.5, 300, 3600)


def test_backoff_doubles_up_to_the_cap():
    settings = load_settings({"initial_backoff": "1s", "max_backoff": "10s"}, environ={})
    assert [settings.backoff(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert settings.backoff(10_000) == 10


def test_every_problem_is_reported_with_its_location():
    with pytest.raises(ConfigError) as info:
        load_settings(
            {
                "alertmanager_url": "am:9093",
                "poll_interval": "soon",
                "batch_size": 0,
                "max_backoff": -1,
                "worker": "yes",
                "ticket_url": "https://support/tickets",
                "colour": "blue",
            },
            environ={},
        )
    assert isinstance(info.value, OutboxConfigError)
    assert sorted(p.split(":")[0] for p in info.value.problems) == [
        "outbox.alertmanager_url",
        "outbox.batch_size",
        "outbox.colour",
        "outbox.max_backoff",
        "outbox.poll_interval",
        "outbox.ticket_url",
        "outbox.worker",
    ]


def test_settings_that_would_break_the_guarantees_are_refused():
    with pytest.raises(OutboxConfigError) as info:
        load_settings({"claim_timeout": "1m", "alert_ttl": "30s"}, environ={})
    assert info.value.problems == [
        "outbox.alert_ttl: must be > outbox.claim_timeout, or a message re-posted after a "
        "crash could be notified twice"
    ]
    with pytest.raises(OutboxConfigError, match="outbox.claim_timeout"):
        load_settings({"request_timeout": "10s", "claim_timeout": "15s"}, environ={})
    with pytest.raises(OutboxConfigError, match="outbox.max_backoff"):
        load_settings({"initial_backoff": "1m", "max_backoff": "10s"}, environ={})
