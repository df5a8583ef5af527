"""The security monitor and rate limits cover the console as they cover the API;
the ``console`` configuration section is checked like every other."""

from __future__ import annotations

import pytest

from tests.harness.app import create_test_app, migrated_app, ticketing_config
from tests.harness.console import csrf_token, signed_in
from tests.harness.seed import Maker
from ticketing.config import ConfigError
from ticketing.console.settings import load_settings
from ticketing.db import db
from ticketing.security.events import SecurityEvent


@pytest.fixture
def limited(db_url, tmp_path, redis_url):
    config = ticketing_config(db_url, tmp_path)
    config["REDIS_URL"] = redis_url
    config["TICKETING"]["ratelimits"] = {
        "enabled": True,
        "limits": {"login": "3/minute", "api_call": "8/minute"},
    }
    yield from migrated_app(config)


def test_failed_sign_ins_count_against_the_ip_login_limit(limited):
    client = limited.test_client()
    token = csrf_token(client)
    statuses = [
        client.post(
            "/console/login", data={"api_key": "pw_0123456789ab_" + "y" * 43, "csrf_token": token}
        ).status_code
        for _ in range(4)
    ]
    assert statuses == [401, 401, 401, 429]
    refused = client.post("/console/login", data={"api_key": "x", "csrf_token": token})
    assert refused.status_code == 429 and refused.mimetype == "text/html"
    assert "Too many requests" in refused.text and int(refused.headers["Retry-After"]) > 0
    # The API refuses the same address too: one budget of key guesses per IP.
    assert (
        limited.test_client().get("/api/v1/tickets", headers={"X-API-Key": "pw_bad"}).status_code
        == 429
    )


def test_a_signed_in_session_spends_its_keys_api_call_budget(limited):
    maker = Maker(limited, limited.test_client())
    agent = maker.staff("agent")
    client = limited.test_client()
    signed_in(client, agent)  # signed out, per IP: the sign-in page and form; then the queue
    assert client.get("/api/v1/staff/tickets", headers=agent.headers).status_code == 200
    statuses = [client.get("/console/").status_code for _ in range(7)]
    assert statuses == [200] * 6 + [429]  # 8 a minute for the key, API and console together
    assert client.get("/api/v1/staff/tickets", headers=agent.headers).status_code == 429


def test_attack_patterns_in_console_forms_are_recorded(console_app, client, make):
    acme, agent = make.partner("Acme"), make.staff("agent")
    ticket = make.ticket(acme)
    token = signed_in(client, agent)
    client.post(
        f"/console/tickets/{ticket['id']}/messages",
        data={"body": "see <script>alert(1)</script>", "kind": "note", "csrf_token": token},
    )
    with console_app.app_context():
        event = db.session.execute(
            db.select(SecurityEvent).where(SecurityEvent.type == "SUSPICIOUS_PATTERN")
        ).scalar_one()
    assert event.actor_kind == "staff" and event.actor_id == str(agent.id)
    assert event.path == f"/console/tickets/{ticket['id']}/messages"
    page = client.get(f"/console/tickets/{ticket['id']}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown as text, never run


def test_console_settings_are_checked():
    assert load_settings(None).poll_interval == 5.0
    assert load_settings({"poll_interval": "2s", "due_soon": "30m"}).due_soon == 1800
    with pytest.raises(ConfigError) as error:
        load_settings(
            {
                "secure_cookie": "yes",
                "poll_interval": "soon",
                "page_size": 0,
                "stale_after": "3",
                "colour": "blue",
            }
        )
    assert sorted(error.value.problems) == [
        "console.colour: unknown setting",
        "console.page_size: must be an integer >= 1 (got 0)",
        "console.poll_interval: must be a duration such as 15s, 500ms or 2m (got 'soon')",
        "console.secure_cookie: must be one of auto, always, never (got 'yes')",
        "console.stale_after: must be an integer >= 1 (got '3')",
    ]


def test_the_console_can_be_switched_off(tmp_path):
    app = create_test_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": "sqlite://",
            "TICKETING": {"console": {"enabled": False}},
        },
        migrate=False,
    )
    assert not any(rule.rule.startswith("/console") for rule in app.url_map.iter_rules())


def test_a_secret_key_file_is_required_to_be_readable(tmp_path):
    with pytest.raises(ConfigError, match="console.secret_key_file: cannot be read"):
        create_test_app(
            {
                "SQLALCHEMY_DATABASE_URI": "sqlite://",
                "TICKETING": {"console": {"secret_key_file": str(tmp_path / "none")}},
            },
            migrate=False,
        )
