"""The ``webhooks`` section: defaults, and one located line per problem."""

from __future__ import annotations

import ipaddress

import pytest

from ticketing.webhooks.delivery import batch_size
from ticketing.webhooks.settings import WebhooksConfigError, WebhooksSettings, load_settings


def test_defaults_are_the_shipped_ones():
    from ticketing.config import load_sections

    shipped = load_settings(load_sections()["webhooks"], environ={}, claim_timeout=60)
    assert shipped == WebhooksSettings()
    assert shipped.require_https and shipped.allowed_networks == ()
    assert shipped.receiver_token is None and shipped.duplicate_window == 60


def test_every_problem_is_reported_with_its_location(tmp_path):
    with pytest.raises(WebhooksConfigError) as caught:
        load_settings(
            {
                "connect_timeout": "soon",
                "batch_size": 0,
                "allowed_networks": ["x"],
                "receiver_token_file": str(tmp_path / "missing"),
                "bogus": 1,
            },
            environ={},
        )
    text = "\n".join(caught.value.problems)
    for location in (
        "webhooks.connect_timeout",
        "webhooks.batch_size",
        "webhooks.allowed_networks[0]",
        "webhooks.receiver_token_file",
        "webhooks.bogus",
    ):
        assert location in text, text


def test_relations_between_settings(tmp_path):
    with pytest.raises(WebhooksConfigError, match="webhooks.max_backoff"):
        load_settings({"initial_backoff": "1m", "max_backoff": "10s"}, environ={})
    with pytest.raises(WebhooksConfigError, match="outbox.claim_timeout"):
        load_settings({"read_timeout": "30s"}, environ={}, claim_timeout=20)
    short = tmp_path / "short"
    short.write_text("abc")
    with pytest.raises(WebhooksConfigError, match="16 characters"):
        load_settings({"receiver_token_file": str(short)}, environ={})


def test_token_from_the_environment_and_networks_parsed(tmp_path):
    token = tmp_path / "token"
    token.write_text("t" * 20 + "\n")
    settings = load_settings(
        {"allowed_networks": ["127.0.0.1", "10.0.0.0/8"]},
        environ={"WEBHOOKS_RECEIVER_TOKEN_FILE": str(token)},
    )
    assert settings.receiver_token == "t" * 20
    assert settings.allowed_networks == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("10.0.0.0/8"),
    )


def test_backoff_grows_with_jitter_and_batches_fit_the_claim():
    settings = WebhooksSettings(initial_backoff=10, max_backoff=60)
    for attempts, full in ((1, 10), (2, 20), (3, 40), (4, 60), (30, 60)):
        delays = {settings.backoff(attempts) for _ in range(50)}
        assert all(full / 2 <= d <= full for d in delays) and len(delays) > 1
    assert batch_size(WebhooksSettings(), 60) == 3  # 3 * 2 * 8 s < 60 s
    assert batch_size(WebhooksSettings(), 10) == 1


def test_delivery_and_receiver_limit_problems_are_located():
    with pytest.raises(WebhooksConfigError) as caught:
        load_settings(
            {
                "receiver_max_bytes": 0,
                "delivery": {"concurrency": 0, "circuit_open_for": "soon", "nope": 1},
            },
            environ={},
        )
    text = "\n".join(caught.value.problems)
    for location in (
        "webhooks.receiver_max_bytes",
        "webhooks.delivery.concurrency",
        "webhooks.delivery.circuit_open_for",
        "webhooks.delivery.nope",
    ):
        assert location in text, text
    with pytest.raises(WebhooksConfigError) as caught:
        load_settings({"delivery": {"concurrency": 2, "per_endpoint": 3}}, environ={})
    assert caught.value.problems == [
        "webhooks.delivery.per_endpoint: must be <= webhooks.delivery.concurrency"
    ]
    settings = load_settings({"delivery": {"concurrency": 4, "per_endpoint": 1}}, environ={})
    assert (settings.delivery.concurrency, settings.delivery.per_endpoint) == (4, 1)
    assert settings.delivery.circuit_failures == 5 and settings.receiver_max_bytes == 16777216
