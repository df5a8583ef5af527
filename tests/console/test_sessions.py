"""Server-side console sessions, on SQLite and PostgreSQL: signing out ends the session on
the server (a copied cookie is refused, its CSRF token too), the idle timeout and the
absolute lifetime, last_seen written at most once a minute, the sessions page (ending
another session), and revoking a key ends all of its sessions."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from datetime import timedelta

import pytest

from tests.harness.app import migrated_app, ticketing_config
from tests.harness.console import csrf_token, signed_in
from tests.harness.seed import Maker
from ticketing.config import ConfigError
from ticketing.console.settings import load_settings
from ticketing.db import db
from ticketing.models import ApiKey, ConsoleSession, Message, utcnow

COOKIE = "partnerwatch_console"


def _cookie_value(client) -> str:
    cookie = client.get_cookie(COOKIE, path="/console")
    assert cookie is not None
    return cookie.value


def _replay(app, value: str):
    """A new browser holding a copy of ``value`` as its console cookie."""
    thief = app.test_client()
    thief.set_cookie(COOKIE, value, path="/console")
    return thief


def _sessions(app) -> list[ConsoleSession]:
    with app.app_context():
        return list(
            db.session.execute(db.select(ConsoleSession).order_by(ConsoleSession.id)).scalars()
        )


def _messages(app) -> int:
    with app.app_context():
        return len(db.session.execute(db.select(Message.id)).all())


def test_the_cookie_holds_only_a_random_token_stored_hashed(console_app, client, make):
    agent = make.staff("agent")
    signed_in(client, agent)
    held = console_app.session_interface.get_signing_serializer(console_app).loads(
        _cookie_value(client)
    )
    assert set(held) <= {"sid", "csrf_token", "_permanent", "_flashes"}
    (row,) = _sessions(console_app)
    assert row.token_hash == hashlib.sha256(held["sid"].encode()).hexdigest()
    assert held["sid"] not in {row.token_hash, row.user_agent, row.ip}
    with console_app.app_context():
        key = db.session.get(ApiKey, row.key_id)
        assert key is not None
        assert key.key_hash[:16] not in _cookie_value(client)  # nothing names the key
    assert row.staff_id == agent.id and row.ended_at is None


def test_a_cookie_copied_before_sign_out_is_refused_after_it(console_app, client, make):
    acme, agent = make.partner("Acme"), make.staff("agent")
    ticket = make.ticket(acme)
    token = signed_in(client, agent)
    copied = _cookie_value(client)
    assert _replay(console_app, copied).get("/console/").status_code == 200  # a valid copy
    assert client.post("/console/logout", data={"csrf_token": token}).status_code == 303
    (row,) = _sessions(console_app)
    assert row.ended_at is not None and row.end_reason == "signed_out"

    # The copy reads nothing: signed out and sent to the sign-in page.
    thief = _replay(console_app, copied)
    page = thief.get(f"/console/tickets/{ticket['id']}")
    assert page.status_code == 302 and page.location.startswith("/console/login")
    assert thief.get("/console/live/queue").status_code == 401
    # ... and its CSRF token posts nothing.
    before = _messages(console_app)
    note = _replay(console_app, copied).post(
        f"/console/tickets/{ticket['id']}/messages",
        data={"body": "written with a stolen cookie", "kind": "note", "csrf_token": token},
    )
    assert note.status_code in (302, 303) and note.location.startswith("/console/login")
    assert _messages(console_app) == before
    # The original browser is signed out too, and a new sign-in is a new session.
    assert client.get("/console/").status_code == 302
    signed_in(client, agent)
    assert [r.ended_at is None for r in _sessions(console_app)] == [False, True]


@pytest.fixture
def short_idle(db_url, tmp_path):
    config = ticketing_config(db_url, tmp_path)
    # Long enough that a page answered slowly on a busy machine is still "in use".
    config["TICKETING"]["console"] = {"idle_timeout": "5s"}
    yield from migrated_app(config)


def test_an_idle_session_ends(short_idle):
    app = short_idle
    make = Maker(app, app.test_client())
    acme, agent = make.partner("Acme"), make.staff("agent")
    ticket = make.ticket(acme)
    client = app.test_client()
    token = signed_in(client, agent)
    for _ in range(4):  # in use: kept (last_seen moves on every half idle timeout here)
        time.sleep(1.5)
        assert client.get("/console/").status_code == 200
    copied = _cookie_value(client)
    time.sleep(5.5)
    response = client.get("/console/")
    assert response.status_code == 302 and response.location.startswith("/console/login")
    (row,) = _sessions(app)
    assert row.end_reason == "idle"
    before = _messages(app)
    note = _replay(app, copied).post(
        f"/console/tickets/{ticket['id']}/messages",
        data={"body": "too late", "kind": "note", "csrf_token": token},
    )
    assert note.status_code in (302, 303) and _messages(app) == before


def test_a_session_ends_after_its_lifetime_however_busy(console_app, client, make):
    agent = make.staff("agent")
    signed_in(client, agent)
    with console_app.app_context():
        row = db.session.execute(db.select(ConsoleSession)).scalar_one()
        row.created_at = utcnow() - timedelta(hours=8, minutes=1)  # console.session_lifetime
        db.session.commit()
    assert client.get("/console/").status_code == 302
    assert _sessions(console_app)[0].end_reason == "expired"


def test_last_seen_is_written_at_most_once_a_minute(console_app, client, make):
    agent = make.staff("agent")
    signed_in(client, agent)

    def set_last_seen(ago: timedelta):
        with console_app.app_context():
            row = db.session.execute(db.select(ConsoleSession)).scalar_one()
            row.last_seen_at = utcnow() - ago
            db.session.commit()
            return row.last_seen_at

    recent = set_last_seen(timedelta(seconds=30))
    for _ in range(3):
        assert client.get("/console/").status_code == 200
    assert _sessions(console_app)[0].last_seen_at == recent
    old = set_last_seen(timedelta(seconds=61))
    assert client.get("/console/").status_code == 200
    assert _sessions(console_app)[0].last_seen_at > old + timedelta(seconds=60)


def test_the_sessions_page_lists_them_and_ends_another(console_app, make, caplog):
    agent, other = make.staff("agent"), make.staff("agent")
    laptop = console_app.test_client()
    phone = console_app.test_client()
    token = signed_in(laptop, agent)
    phone.environ_base["HTTP_USER_AGENT"] = "PhoneBrowser/1.0"
    signed_in(phone, agent)
    signed_in(console_app.test_client(), other)  # someone else's: not listed
    page = laptop.get("/console/sessions")
    assert page.status_code == 200
    assert 'href="/console/sessions"' in laptop.get("/console/").text  # in the header
    assert page.text.count("This session") == 1 and "PhoneBrowser/1.0" in page.text
    ends = re.findall(r'action="/console/sessions/(\d+)/end"', page.text)
    mine, phones, others = _sessions(console_app)
    assert ends == [str(phones.id)]
    assert phones.user_agent == "PhoneBrowser/1.0" and phones.ip == "127.0.0.1"

    # Without the form's token: refused, nothing ended.
    assert laptop.post(f"/console/sessions/{phones.id}/end").status_code == 400
    # Another staff member's session is not one of ours.
    assert (
        laptop.post(f"/console/sessions/{others.id}/end", data={"csrf_token": token}).status_code
        == 404
    )
    assert phone.get("/console/").status_code == 200
    with caplog.at_level(logging.INFO, logger="ticketing.console"):
        ended = laptop.post(f"/console/sessions/{phones.id}/end", data={"csrf_token": token})
    assert ended.status_code == 303 and ended.location == "/console/sessions"
    assert f"console session {phones.id} ended (ended)" in caplog.text
    assert phone.get("/console/").status_code == 302
    assert laptop.get("/console/").status_code == 200
    rows = _sessions(console_app)
    assert [r.end_reason for r in rows] == [None, "ended", None]
    assert "PhoneBrowser/1.0" not in laptop.get("/console/sessions").text


def test_revoking_the_key_ends_all_its_sessions(console_app, make):
    agent = make.staff("agent")
    browsers = [console_app.test_client() for _ in range(2)]
    for browser in browsers:
        signed_in(browser, agent)
    with console_app.app_context():
        key = db.session.execute(db.select(ApiKey).where(ApiKey.staff_id == agent.id)).scalar_one()
        key.revoked_at = utcnow()
        db.session.commit()
    for browser in browsers:
        assert browser.get("/console/").status_code == 302
    assert [r.end_reason for r in _sessions(console_app)] == ["key", "key"]
    # Signing in with the revoked key starts nothing.
    fresh = console_app.test_client()
    refused = fresh.post(
        "/console/login", data={"api_key": agent.key, "csrf_token": csrf_token(fresh)}
    )
    assert refused.status_code == 401 and len(_sessions(console_app)) == 2


def test_the_idle_timeout_setting_is_checked():
    assert load_settings(None).idle_timeout == 1800
    assert load_settings({"idle_timeout": "5m"}).idle_timeout == 300
    with pytest.raises(ConfigError) as error:
        load_settings({"idle_timeout": "soon"})
    assert error.value.problems == [
        "console.idle_timeout: must be a duration such as 15s, 500ms or 2m (got 'soon')"
    ]
